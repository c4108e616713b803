"""Drive `spr mcp` with the official MCP Python SDK, as an MCP client would.

Run by crates/spr-cli/tests/mcp.rs with the SDK's venv (.ci/mcp-setup.sh):

    client.py stdio --mode legacy|auto --max-timeout N -- SPR_COMMAND...
    client.py http  --mode legacy|auto --max-timeout N --url URL --token TOKEN

Each scenario is a list of checks. The first one that fails ends the script with exit
status 1 and a line naming it; 0 means every check passed. Timing bounds are loose on
purpose: the tests run on two busy cores.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.client.streamable_http import streamable_http_client

# A call that the server answers at once (or refuses) should never take this long.
CALL_TIMEOUT = 120.0
# The run a cancellation stops: far longer than the checks that it was stopped allow.
LONG_SLEEP = 30


class CheckFailed(Exception):
    """A check did not hold; the message says which and what was seen."""


def check(condition: bool, what: str, seen: Any = None) -> None:
    if not condition:
        detail = "" if seen is None else f"; saw: {seen!r}"[:2000]
        raise CheckFailed(f"{what}{detail}")


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def call(client: Client, arguments: dict[str, Any], name: str = "run_python") -> Any:
    return await client.call_tool(name, arguments, read_timeout_seconds=CALL_TIMEOUT)


async def handshake_checks(client: Client, profile: str, max_timeout: int) -> None:
    print(f"connected: protocol {client.protocol_version}, profile {profile}")
    info = client.server_info
    check(info is not None and info.name == "spr", "the server calls itself spr", info)
    instructions = client.instructions or ""
    check(f'profile "{profile}"' in instructions, f"the instructions name the profile {profile}", instructions)
    check("blocked imports" in instructions, "the instructions list the blocked imports", instructions)
    check(f"at most {max_timeout} s" in instructions, "the instructions give the time limit", instructions)

    listed = await client.list_tools()
    names = [tool.name for tool in listed.tools]
    check(names == ["run_python", "create_session", "close_session"], "run_python and the session tools", names)
    tool = listed.tools[0]
    schema = tool.input_schema
    check(schema.get("required") == ["code"], "only code is required", schema)
    properties = schema.get("properties", {})
    check(
        sorted(properties) == ["code", "input_data", "session_id", "timeout_seconds"],
        "the arguments of the contract",
        sorted(properties),
    )
    check(properties["code"].get("type") == "string", "code is a string", properties["code"])
    check(properties["input_data"].get("type") == "object", "input_data is an object", properties["input_data"])
    limit = properties["timeout_seconds"]
    check(limit.get("type") == "integer" and limit.get("maximum") == max_timeout, "timeout_seconds is capped at the profile's", limit)
    check(all(p.get("description") for p in properties.values()), "every argument is described", properties)
    check(bool(tool.description), "the tool is described", tool)
    output = tool.output_schema or {}
    check("ok" in output.get("properties", {}), "an output schema describes the RunnerResult", output)


async def run_checks(client: Client, max_timeout: int) -> None:
    # Success: the value of `result`, stdout, and the RunnerResult as structured content
    # (which the SDK has already validated against the output schema).
    result = await call(client, {"code": "print('hi')\nresult = input_data['x'] * 2", "input_data": {"x": 21}})
    check(not result.is_error, "a successful run is not an error", result)
    structured = result.structured_content or {}
    check(structured.get("result") == 42 and structured.get("ok") is True, "structuredContent.result is 42", structured)
    check(structured.get("stdout") == "hi\n", "structuredContent.stdout", structured)
    text = text_of(result)
    check("status: ok" in text and "42" in text and "hi" in text, "the text shows status, result and stdout", text)

    # The policy: a blocked import is a tool error that names it.
    result = await call(client, {"code": "import socket"})
    check(result.is_error is True, "a blocked import is a tool error", result)
    check("blocked by policy" in text_of(result), "the text says the import is blocked", text_of(result))
    check((result.structured_content or {}).get("ok") is False, "structuredContent.ok is false", result.structured_content)

    # A lower timeout narrows the run.
    started = time.monotonic()
    result = await call(client, {"code": "import time\ntime.sleep(20)", "timeout_seconds": 1})
    structured = result.structured_content or {}
    check(result.is_error is True and structured.get("timed_out") is True, "timeout_seconds 1 times the run out", structured)
    check(structured.get("exit_code") == 124, "a timeout exits 124", structured)
    check(time.monotonic() - started < 15, "the run stopped long before its sleep ended", time.monotonic() - started)

    # A string with a lone surrogate (bytes decoded with surrogateescape) is answered,
    # with U+FFFD in its place: JSON readers refuse a lone surrogate escape.
    result = await call(client, {"code": "result = ['\\udcff', b'a\\xffb'.decode('utf-8', 'surrogateescape')]"})
    structured = result.structured_content or {}
    check(structured.get("result") == ["\ufffd", "a\ufffdb"], "a lone surrogate comes back as U+FFFD", structured)

    # An exception comes back as text a model can read.
    result = await call(client, {"code": "x = 1 / 0"})
    check(result.is_error is True and "ZeroDivisionError" in text_of(result), "the exception is in the text", text_of(result))

    # Arguments the server refuses, each a tool error that says why; the server carries on.
    result = await call(client, {"code": "result = 1", "timeout_seconds": max_timeout + 1})
    check(result.is_error is True, "a timeout above the profile's is refused", result)
    check(f"limit of {max_timeout} s" in text_of(result), "the refusal names the limit", text_of(result))
    result = await call(client, {"code": "result = 1", "session_id": "abc"})
    check(result.is_error is True and 'unknown session "abc"' in text_of(result), "an unknown session_id is a tool error naming it", text_of(result))
    for arguments, says in [
        ({}, 'missing argument "code"'),
        ({"code": 7}, '"code" must be a string'),
        ({"code": "result = 1", "input_data": [1, 2]}, '"input_data" must be a JSON object'),
        ({"code": "result = 1", "timeout_seconds": "5"}, '"timeout_seconds" must be a positive whole number'),
        ({"code": "result = 1", "policy": {"timeout_seconds": 99}}, 'unknown argument "policy"'),
    ]:
        result = await call(client, arguments)
        check(result.is_error is True and says in text_of(result), f"{json.dumps(arguments)} is refused saying {says!r}", text_of(result))

    # A tool the server does not have is a protocol error.
    try:
        await call(client, {"code": "1"}, name="delete_everything")
    except MCPError as e:
        check(e.code == -32602 and "unknown tool" in e.message, "an unknown tool is invalid params", (e.code, e.message))
    else:
        raise CheckFailed("calling an unknown tool did not fail")

    result = await call(client, {"code": "result = [1, 'two', None]"})
    check((result.structured_content or {}).get("result") == [1, "two", None], "the server carries on after the refusals", result)


async def session_checks(client: Client, max_timeout: int, max_sessions: int | None) -> None:
    """create_session, runs that share state and show `value`, an interrupted cell that
    keeps the session, close_session, and the refusals, each a tool error naming what."""
    listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    create = tools["create_session"]
    check(create.output_schema and "session_id" in create.output_schema.get("properties", {}), "create_session's output schema", create.output_schema)
    limit = create.input_schema.get("properties", {}).get("timeout_seconds", {})
    check(limit.get("maximum") == max_timeout, "create_session's timeout_seconds is capped at the profile's", limit)
    close = tools["close_session"]
    check(close.input_schema.get("required") == ["session_id"], "close_session needs session_id", close.input_schema)

    result = await call(client, {}, name="create_session")
    check(not result.is_error, "create_session succeeds", result)
    sid = (result.structured_content or {}).get("session_id")
    check(isinstance(sid, str) and sid.startswith("ses_"), "structuredContent.session_id", result.structured_content)
    check(sid in text_of(result), "the text gives the session_id", text_of(result))

    result = await call(client, {"code": "import math\nx = 20\nprint('set')", "session_id": sid})
    structured = result.structured_content or {}
    check(not result.is_error and structured.get("stdout") == "set\n", "a first cell runs", structured)
    check("value" in structured and structured["value"] is None, "a cell ending in a statement has value null", structured)
    result = await call(client, {"code": "x += 1\n{'x': x, 'f': math.factorial(4)}", "session_id": sid})
    structured = result.structured_content or {}
    check(structured.get("value") == {"x": 21, "f": 24}, "the next cell sees the first's globals and imports", structured)
    check('value: {"x":21,"f":24}' in text_of(result), "the text shows the value", text_of(result))

    result = await call(client, {"code": "x", "session_id": sid, "timeout_seconds": 1})
    check(result.is_error is True and "cannot be set on a run in a session" in text_of(result), "timeout_seconds with session_id is refused", text_of(result))
    result = await call(client, {"timeout_seconds": max_timeout + 1}, name="create_session")
    check(result.is_error is True and f"limit of {max_timeout} s" in text_of(result), "a session above the profile's limit is refused", text_of(result))
    result = await call(client, {"ttl_seconds": 0}, name="create_session")
    check(result.is_error is True and '"ttl_seconds" must be between 1' in text_of(result), "a zero TTL is refused", text_of(result))

    # A session whose cells may take 1 s: an endless cell is interrupted, the state stays.
    result = await call(client, {"timeout_seconds": 1, "ttl_seconds": 60}, name="create_session")
    quick = (result.structured_content or {}).get("session_id")
    check(isinstance(quick, str), "a session with a lower limit", result)
    if max_sessions == 2:
        result = await call(client, {}, name="create_session")
        check(result.is_error is True and "too many open sessions: this engine allows 2" in text_of(result), "the server's session cap is a tool error", text_of(result))
    await call(client, {"code": "y = 5", "session_id": quick})
    result = await call(client, {"code": "while True: pass", "session_id": quick})
    structured = result.structured_content or {}
    check(result.is_error is True and structured.get("timed_out") is True, "the endless cell times out", structured)
    check(not structured.get("session_lost"), "the interrupted session is not lost", structured)
    result = await call(client, {"code": "y * 2", "session_id": quick})
    check((result.structured_content or {}).get("value") == 10, "the session survived its interrupted cell", result.structured_content)

    for session in (sid, quick):
        result = await call(client, {"session_id": session}, name="close_session")
        check(not result.is_error and (result.structured_content or {}).get("closed") is True, "close_session closes", result)
    result = await call(client, {"session_id": sid}, name="close_session")
    check(result.is_error is True and f'unknown session "{sid}"' in text_of(result), "closing it again names the unknown session", text_of(result))
    result = await call(client, {"code": "x", "session_id": sid})
    check(result.is_error is True and "unknown session" in text_of(result), "a closed session cannot run", text_of(result))
    result = await call(client, {}, name="close_session")
    check(result.is_error is True and 'missing argument "session_id"' in text_of(result), "close_session without an id", text_of(result))


async def cancel_checks(client: Client) -> None:
    """A call the client gives up on is cancelled, and its worker is free at once: with a
    pool of one worker, the next call answers long before the first run's sleep ends."""
    started = time.monotonic()
    with anyio.move_on_after(3):
        await call(client, {"code": f"import time\ntime.sleep({LONG_SLEEP})"})
        raise CheckFailed("the long run returned before it was cancelled")
    result = await call(client, {"code": "result = 'free'"})
    check((result.structured_content or {}).get("result") == "free", "the next call runs", result)
    took = time.monotonic() - started
    check(took < LONG_SLEEP - 5, "the cancelled run no longer held the only worker", took)

    # A cancelled cell kills its session's interpreter: the session is lost, and says so.
    result = await call(client, {}, name="create_session")
    sid = (result.structured_content or {}).get("session_id")
    await call(client, {"code": "z = 1", "session_id": sid})
    with anyio.move_on_after(3):
        await call(client, {"code": f"import time\ntime.sleep({LONG_SLEEP})", "session_id": sid})
        raise CheckFailed("the long cell returned before it was cancelled")
    deadline = time.monotonic() + 30
    while True:
        result = await call(client, {"code": "z", "session_id": sid})
        if "was lost" in text_of(result):
            break
        check(time.monotonic() < deadline, "a cancelled cell loses its session", text_of(result))
        await anyio.sleep(0.2)
    check(result.is_error is True, "a run in a lost session is a tool error", result)
    result = await call(client, {"session_id": sid}, name="close_session")
    check(not result.is_error, "a lost session can be closed", text_of(result))


async def too_deep_checks(client: Client, transport: str) -> None:
    """Input nested deeper than a JSON parser allows: the server refuses the message (HTTP)
    or drops it (stdio, where it has no id to answer), and carries on either way."""
    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    try:
        with anyio.fail_after(5 if transport == "stdio" else CALL_TIMEOUT):
            result = await client.call_tool("run_python", {"code": "result = 1", "input_data": {"a": deep}})
        check(result.is_error is True, "too deep input is not run", result)
    except (MCPError, TimeoutError, httpx2.HTTPError, ExceptionGroup):
        pass
    result = await call(client, {"code": "result = 'still here'"})
    check((result.structured_content or {}).get("result") == "still here", "the server carries on after too deep input", result)


async def figure_checks(client: Client) -> None:
    """A figure the code leaves open comes back as MCP image content (base64 PNG), besides
    the text and the RunnerResult's `outputs`; a run without one has no image."""
    code = (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [2, 0, 1])\nresult = 'drawn'"
    )
    result = await call(client, {"code": code})
    check(not result.is_error, "the plotting run succeeds", text_of(result))
    images = [b for b in result.content if getattr(b, "type", "") == "image"]
    check(len(images) == 1, "one image content block", result.content)
    image = images[0]
    check(image.mime_type == "image/png", "the image is a PNG", image.mime_type)
    check(base64.b64decode(image.data)[:8] == b"\x89PNG\r\n\x1a\n", "the image data is a PNG", image.data[:40])
    outputs = (result.structured_content or {}).get("outputs") or []
    check([o.get("data") for o in outputs] == [image.data], "structuredContent.outputs holds the same image", outputs)
    check("figures: 1" in text_of(result), "the text says a figure came back", text_of(result))
    result = await call(client, {"code": "result = 1"})
    check(all(getattr(b, "type", "") == "text" for b in result.content), "no image without a figure", result.content)


async def stdio_scenario(args: argparse.Namespace) -> None:
    command, *rest = args.spr
    params = StdioServerParameters(command=command, args=rest)
    async with Client(params, mode=args.mode) as client:
        if args.figures:
            await figure_checks(client)
            return
        await handshake_checks(client, args.profile, args.max_timeout)
        await run_checks(client, args.max_timeout)
        await session_checks(client, args.max_timeout, args.max_sessions)
        if args.cancel:
            await cancel_checks(client)
        await too_deep_checks(client, "stdio")


def http_client(token: str | None) -> httpx2.AsyncClient:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return create_mcp_http_client(headers=headers)


async def http_status(url: str, token: str | None) -> httpx2.Response:
    """An initialize POST as a raw HTTP request, to see the server's status and headers."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    async with http_client(token) as http:
        return await http.post(url, json=body, headers={"Accept": "application/json, text/event-stream"})


async def http_scenario(args: argparse.Namespace) -> None:
    base = args.url
    response = await http_status(base, None)
    check(response.status_code == 401, "no token: 401", (response.status_code, response.text))
    check(response.headers.get("www-authenticate") == "Bearer", "401 says how to authenticate", dict(response.headers))
    check("bearer token" in response.json().get("error", ""), "the 401 body is a JSON error", response.text)
    response = await http_status(base, args.token + "x")
    check(response.status_code == 401, "a wrong token: 401", (response.status_code, response.text))
    response = await http_status(base + "?profile=nope", args.token)
    check(response.status_code == 400 and "unknown profile" in response.text, "an unknown profile in the URL: 400", (response.status_code, response.text))
    response = await http_status(base, args.token)
    check(response.status_code == 200, "the right token: 200", (response.status_code, response.text))

    async with http_client(args.token) as http:
        async with Client(streamable_http_client(base, http_client=http), mode=args.mode) as client:
            await handshake_checks(client, args.profile, args.max_timeout)
            await run_checks(client, args.max_timeout)
            await session_checks(client, args.max_timeout, args.max_sessions)
            if args.cancel:
                await cancel_checks(client)
            await too_deep_checks(client, "http")
    if args.strict_timeout:
        # The URL the client is configured with picks the operator's named profile.
        async with http_client(args.token) as http:
            url = base + "?profile=strict"
            async with Client(streamable_http_client(url, http_client=http), mode=args.mode) as client:
                await handshake_checks(client, "strict", args.strict_timeout)
                result = await call(client, {"code": "result = 1", "timeout_seconds": args.strict_timeout + 1})
                check(f"limit of {args.strict_timeout} s" in text_of(result), "the strict profile's limit applies", text_of(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--mode", default="legacy", help="the SDK's connection mode: legacy (initialize) or auto")
    parser.add_argument("--profile", default="default", help="the profile the server is expected to run")
    parser.add_argument("--max-timeout", type=int, required=True, help="that profile's timeout_seconds")
    parser.add_argument("--strict-timeout", type=int, help="http: the timeout_seconds of the profile 'strict'")
    parser.add_argument("--cancel", action="store_true", help="check cancellation (the server has one worker)")
    parser.add_argument("--figures", action="store_true", help="stdio: only the figure checks (the server runs the data stack)")
    parser.add_argument("--max-sessions", type=int, help="the server's --max-sessions (2: the cap is checked)")
    parser.add_argument("--url")
    parser.add_argument("--token")
    # stdio: the spr mcp command line follows `--` (split here: argparse mixes it up with
    # the transport positional).
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.spr = argv[split + 1 :]
    if args.transport == "stdio" and not args.spr:
        parser.error("stdio needs the spr command line after --")
    scenario = stdio_scenario if args.transport == "stdio" else http_scenario
    try:
        anyio.run(scenario, args)
    except CheckFailed as failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    print(f"ok: every {args.transport} check passed ({args.mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
