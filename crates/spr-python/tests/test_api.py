"""run_code on a real local engine: values in and out, limits, and how bad arguments fail."""

from __future__ import annotations

import asyncio
import json
import multiprocessing

import pytest

import spr
from spr import RunnerPolicy, run_code


def test_basic_run_returns_result_and_stdout(engine):
    r = run_code("print('hi')\nresult = x * 2", engine, input_data={"x": 21})
    assert r.ok, r
    assert r.result == 42
    assert r.stdout == "hi\n"
    assert r.stderr == ""
    assert r.error is None
    assert r.exit_code == 0
    assert not r.timed_out and not r.resource_exceeded
    assert r.duration_ms >= 0


def test_result_types_come_back_exactly(engine):
    value = {
        "big": 10**40,
        "neg_big": -(2**63) - 1,
        "nested": {"a": {"b": {"c": [1, 2.5, "é", None, True, False]}}},
        "none": None,
        "t": True,
        "f": False,
        "empty": {},
        "list": [],
    }
    r = run_code("result = input_data", engine, input_data=value)
    assert r.ok, r
    assert r.result == value
    # bools stay bools, ints stay ints (True == 1 in Python, so compare the types too).
    assert type(r.result["t"]) is bool and type(r.result["f"]) is bool
    assert type(r.result["big"]) is int and r.result["big"] == 10**40
    assert r.result["none"] is None


def test_result_computed_in_the_run_is_exact(engine):
    r = run_code("result = {'p': 2**100 + 1, 'n': None, 'b': [True, False], 't': (1, 2)}", engine)
    assert r.ok, r
    assert r.result == {"p": 2**100 + 1, "n": None, "b": [True, False], "t": [1, 2]}


def test_input_keys_become_globals(engine):
    r = run_code("result = [a, b['c'], input_data['a']]", engine, input_data={"a": 1, "b": {"c": "x"}})
    assert r.result == [1, "x", 1]


def test_falsy_input_is_an_empty_dict(engine):
    for falsy in (None, {}, []):
        r = run_code("result = input_data", engine, input_data=falsy)
        assert r.ok and r.result == {}, (falsy, r)


def test_stderr_and_exception(engine):
    r = run_code("import sys\nsys.stderr.write('warn\\n')\nresult = 5\nraise ValueError('boom')", engine)
    assert not r.ok
    assert r.error == "ValueError: boom"
    assert r.exit_code == 1
    assert r.result is None  # as in the original: the result is dropped when the code raises
    assert "warn" in r.stderr
    assert "ValueError: boom" in r.stderr


def test_syntax_error(engine):
    r = run_code("def (", engine)
    assert not r.ok
    assert r.error.startswith("SyntaxError: ")


def test_blocked_import_default_policy(engine):
    r = run_code("import os", engine)
    assert not r.ok
    assert r.error == "ImportError: Import 'os' is blocked by policy"


def test_timeout(engine):
    r = run_code("while True:\n    pass", engine, policy=RunnerPolicy(timeout_seconds=1))
    assert not r.ok
    assert r.timed_out
    assert r.exit_code == 124
    assert r.error == "Execution timed out after 1s"


def test_memory_limit(engine):
    r = run_code("x = bytearray(400 * 1024 * 1024)", engine, policy=RunnerPolicy(memory_limit_mb=64))
    assert not r.ok
    assert r.resource_exceeded
    assert "MemoryError" in r.error


def test_output_truncation_flags(engine):
    code = "import sys\nprint('a' * 10000)\nsys.stderr.write('b' * 10000)"
    r = run_code(code, engine, policy=RunnerPolicy(max_output_kb=4))
    assert r.ok, r
    assert r.stdout_truncated and r.stderr_truncated
    assert len(r.stdout) == 4096 and set(r.stdout) == {"a"}
    assert len(r.stderr) <= 4096 + 200  # the cut stream, plus at most a short note
    r = run_code("print('short')", engine, policy=RunnerPolicy(max_output_kb=4))
    assert not r.stdout_truncated and not r.stderr_truncated


def test_raw_descriptor_writes_are_capped_too(engine):
    # The original let sys.__stderr__ through uncapped (5 MB came back with a 1 KiB cap).
    code = "import os, sys\nos.write(1, b'o' * 50000)\nsys.__stderr__.write('e' * 50000)\nsys.__stderr__.flush()"
    r = run_code(code, engine, policy=RunnerPolicy(max_output_kb=1, blocked_imports=[]))
    assert r.ok, r
    assert r.stdout_truncated and r.stderr_truncated
    assert len(r.stdout) == 1024 and len(r.stderr) <= 1024 + 200


def test_sandbox_receipt_is_present(engine):
    r = run_code("result = 1", engine)
    assert isinstance(r.sandbox, dict)
    assert r.sandbox.get("engine") == "local"
    assert "namespaces" in r.sandbox


# --- policy errors: ValueError naming the key -------------------------------------------


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"timeout_seconds": "5"}, "timeout_seconds"),
        ({"timeout_seconds": 1.5}, "timeout_seconds"),
        ({"timeout_seconds": True}, "timeout_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"memory_limit_mb": -1}, "memory_limit_mb"),
        ({"max_output_kb": -5}, "max_output_kb"),
        ({"blocked_imports": "os"}, "blocked_imports"),
        ({"allowed_builtins": [1]}, "allowed_builtins"),
        ({"blocked_imports": ["a b"]}, "blocked_imports"),
        ({"extra_globals": []}, "extra_globals"),
        ({"extra_globals": {"result": 1}}, "result"),
        ({"sandbox": {"bogus": 1}}, "bogus"),
    ],
)
def test_bad_policy_raises_value_error_naming_the_key(engine, kwargs, key):
    policy = RunnerPolicy(**kwargs)
    with pytest.raises(ValueError, match=key):
        run_code("result = 1", engine, policy=policy)
    with pytest.raises(ValueError, match=key):
        policy.check()


def test_policy_check_passes_a_good_policy():
    p = RunnerPolicy(timeout_seconds=3, allowed_imports=["math"])
    assert p.check() is p


def test_unknown_key_in_policy_file(engine, tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('[policy]\nblocked_import = ["os"]\n')
    with pytest.raises(ValueError, match="blocked_import"):
        run_code("result = 1", engine, policy_file=str(path))
    with pytest.raises(ValueError, match="blocked_import"):
        RunnerPolicy.from_file(path)


def test_policy_and_policy_file_together(engine, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[policy]\n")
    with pytest.raises(ValueError, match="Provide either 'policy' or 'policy_file', not both"):
        run_code("result = 1", engine, policy=RunnerPolicy(), policy_file=str(path))


def test_bad_mode_raises_at_construction():
    with pytest.raises(ValueError, match="mode must be 'allow' or 'restrict'"):
        RunnerPolicy(mode="x")


def test_policy_not_a_runner_policy(engine):
    with pytest.raises(TypeError, match="RunnerPolicy"):
        run_code("result = 1", engine, policy={"timeout_seconds": 1})


def test_from_file_missing_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        RunnerPolicy.from_file(tmp_path / "nope.toml")


def test_policy_file_missing_at_run_is_refused(engine, tmp_path):
    # spr refuses a missing file (the original silently used the defaults).
    with pytest.raises((ValueError, FileNotFoundError), match="nope.toml"):
        run_code("result = 1", engine, policy_file=str(tmp_path / "nope.toml"))


def test_from_file_keeps_omitted_defaults(engine, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[policy]\nmode = "restrict"\n')
    p = RunnerPolicy.from_file(path)
    assert p.config_path == str(path)
    assert "os" in p.blocked_imports
    r = run_code("import os", engine, policy=p)
    assert r.error == "ImportError: Import 'os' is blocked by policy"


def test_config_path_is_reread_on_every_run(engine, tmp_path):
    path = tmp_path / "live.toml"
    path.write_text('[policy]\nblocked_imports = ["json"]\n')
    policy = RunnerPolicy.from_file(path)
    code = "import json\nresult = json.dumps([1])"
    r = run_code(code, engine, policy=policy)
    assert r.error == "ImportError: Import 'json' is blocked by policy"

    path.write_text("[policy]\nblocked_imports = []\n")
    r = run_code(code, engine, policy=policy)
    assert r.ok and r.result == "[1]", r

    # The file wins over the object's fields, as in the original.
    policy.blocked_imports = ["json"]
    r = run_code(code, engine, policy=policy)
    assert r.ok, r

    path.write_text("[policy]\ntimeout_seconds = -1\n")
    with pytest.raises(ValueError, match="timeout_seconds"):
        run_code(code, engine, policy=policy)


def test_policy_to_dict_round_trips_through_json():
    p = RunnerPolicy(timeout_seconds=2, extra_globals={"rate": 0.5})
    d = json.loads(p.to_json())
    assert d == p.to_dict()
    assert d["timeout_seconds"] == 2 and d["extra_globals"] == {"rate": 0.5}
    assert "sandbox" not in d  # empty: left out


def test_extra_globals_reach_the_code(engine):
    r = run_code("result = rate * 2", engine, policy=RunnerPolicy(extra_globals={"rate": 21}))
    assert r.ok and r.result == 42


# --- argument errors ----------------------------------------------------------------------


def test_input_not_json_serialisable_is_type_error(engine):
    with pytest.raises(TypeError):
        run_code("result = 1", engine, input_data={"a": {1, 2}})


def test_extra_globals_not_json_serialisable_is_type_error(engine):
    with pytest.raises(TypeError):
        run_code("result = 1", engine, policy=RunnerPolicy(extra_globals={"f": object()}))


def test_run_code_without_engine():
    with pytest.raises(TypeError, match="engine"):
        run_code("result = 1")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="engine"):
        run_code("result = 1", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="engine"):
        run_code("result = 1", object())  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [b"result = 1", 1, None, ["result = 1"]])
def test_code_not_a_str(engine, code):
    with pytest.raises(TypeError, match="code must be a str"):
        run_code(code, engine)  # type: ignore[arg-type]


# --- a foreign engine of the original's duck-typed protocol -------------------------------


class EchoEngine:
    """An engine of the original's protocol: answers the worker's JSON itself."""

    def __init__(self, stdout=None, timed_out=False, returncode=0, error=None):
        self.requests = []
        self.stdout = stdout
        self.timed_out = timed_out
        self.returncode = returncode
        self.error = error

    def execute(self, request):
        self.requests.append(request)
        payload = request.payload
        stdout = self.stdout
        if stdout is None:
            stdout = json.dumps(
                {"ok": True, "result": payload["input_data"], "stdout": payload["code"], "stderr": ""}
            )
        return spr.ExecutionOutcome(
            stdout=stdout,
            stderr="raw-stderr",
            returncode=self.returncode,
            timed_out=self.timed_out,
            error=self.error,
        )


def test_foreign_engine_gets_the_original_payload():
    eng = EchoEngine()
    policy = RunnerPolicy(timeout_seconds=3, blocked_imports=["os"])
    r = run_code("print(1)", eng, input_data={"x": (1, 2)}, policy=policy)
    assert r.ok
    assert r.result == {"x": [1, 2]}  # JSON round trip, as the original
    assert r.stdout == "print(1)"
    (req,) = eng.requests
    assert req.timeout_seconds == 3
    assert req.payload["code"] == "print(1)"
    assert req.payload["policy"]["blocked_imports"] == ["os"]
    assert set(req.payload["policy"]) == {
        "mode",
        "timeout_seconds",
        "memory_limit_mb",
        "max_output_kb",
        "allowed_imports",
        "blocked_imports",
        "allowed_builtins",
        "blocked_builtins",
        "allowed_globals",
        "blocked_globals",
        "extra_globals",
    }


def test_foreign_engine_timeout_and_bad_json():
    r = run_code("x", EchoEngine(timed_out=True), policy=RunnerPolicy(timeout_seconds=2))
    assert (r.ok, r.timed_out, r.exit_code, r.error) == (False, True, 124, "Execution timed out after 2s")
    r = run_code("x", EchoEngine(stdout="not json", returncode=3))
    assert (r.ok, r.error, r.exit_code, r.stderr) == (False, "Runner returned invalid JSON", 3, "raw-stderr")
    r = run_code("x", EchoEngine(stdout="[1]"))
    assert not r.ok and r.error  # spr answers instead of the original's AttributeError


def test_foreign_engine_refuses_files():
    with pytest.raises(ValueError):
        run_code("x", EchoEngine(), files={"a.txt": "x"})


def test_run_code_async_refuses_a_foreign_engine():
    with pytest.raises(TypeError):
        asyncio.run(spr.run_code_async("x", EchoEngine()))


def test_engine_kind_and_repr(engine):
    assert engine.kind == "local"
    assert "venv" in repr(engine)


def test_shutdown_then_reuse(engine):
    eng = spr.LocalEngine(venv_dir=engine.venv_dir, pool_size=1)
    with eng:
        eng.warm_up()
        assert run_code("result = 1", eng).result == 1
    # shut down by the context manager: used again, it starts new workers
    assert run_code("result = 2", eng).result == 2
    eng.shutdown()


# --- known bugs (marked `bug`: they fail until fixed) -----------------------------------
def test_extra_globals_big_int_is_not_turned_into_a_float(engine):
    """Was a bug, fixed: an extra_globals integer beyond 64 bits comes back to the code as a float
    (2**70 -> 1.1805916207174113e+21), silently. docs/POLICY.md says the values are
    signed 64-bit integers: it should be refused (ValueError naming the key) or exact."""
    policy = RunnerPolicy(extra_globals={"big": 2**70})
    try:
        r = run_code("result = [type(big).__name__, big]", engine, policy=policy)
    except ValueError as e:
        assert "big" in str(e)
        return
    assert r.result == ["int", 2**70], r.result
def test_sandbox_type_error_names_the_key(engine):
    """Was a bug, fixed: a wrong type in the sandbox table says only 'invalid type: string "x",
    expected u64', without naming sandbox.max_file_size_mb."""
    with pytest.raises(ValueError, match="max_file_size_mb"):
        RunnerPolicy(sandbox={"max_file_size_mb": "x"}).check()
def test_nan_refusals_name_where_the_nan_is(engine):
    """Was a bug, fixed: NaN in input_data or extra_globals is refused with json's bare 'Out of range
    float values are not JSON compliant': neither the argument nor the key is named."""
    with pytest.raises(ValueError, match="input_data"):
        run_code("result = 1", engine, input_data={"a": float("nan")})
    with pytest.raises(ValueError, match="extra_globals"):
        run_code("result = 1", engine, policy=RunnerPolicy(extra_globals={"a": float("inf")}))
def test_policy_file_missing_at_run_is_file_not_found(engine, tmp_path):
    """Was a bug, fixed: docs/PYTHON.md says a missing policy file raises FileNotFoundError, and
    RunnerPolicy.from_file does; run_code(policy_file=...), engine.session(policy_file=...)
    and a config_path that vanished raise ValueError instead."""
    missing_path = str(tmp_path / "nope.toml")
    with pytest.raises(FileNotFoundError):
        run_code("result = 1", engine, policy_file=missing_path)
    with pytest.raises(FileNotFoundError):
        engine.session(policy_file=missing_path)
    with pytest.raises(FileNotFoundError):
        run_code("result = 1", engine, policy=RunnerPolicy(config_path=missing_path))
def test_check_reads_the_config_path(tmp_path):
    """Was a bug, fixed: check() 'checks every field now rather than at the first run', but for a
    policy with config_path it checks nothing: a missing or invalid file passes, and the
    first run fails."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\ntimeout_seconds = 0\n")
    with pytest.raises((ValueError, FileNotFoundError)):
        RunnerPolicy(config_path=str(tmp_path / "nope.toml")).check()
    with pytest.raises(ValueError, match="timeout_seconds"):
        RunnerPolicy(config_path=str(bad)).check()
@pytest.mark.parametrize(
    "code",
    [
        # Python's 4300-digit limit on int parsing, lifted in the run, not in the host.
        "import sys\nsys.set_int_max_str_digits(0)\nresult = 10 ** 5000",
        # Deeper than the host's json.loads can recurse.
        "import sys\nsys.setrecursionlimit(100000)\nx = []\nfor _ in range(5000):\n    x = [x]\nresult = x",
    ],
    ids=["huge-int", "deep-nesting"],
)
def test_a_hostile_result_does_not_raise_in_the_host(engine, code):
    """Was a bug, fixed: the code decides its result's JSON, and the host's json.loads in
    RunnerResult._from_json raises on some of it (ValueError: Exceeds the limit (4300
    digits); RecursionError), so run_code raises in the caller instead of returning a
    result, against 'whatever happens once the code runs is in the result, never an
    exception' (the original's AttributeError on a '[1]' result, in a new form)."""
    r = run_code(code, engine)
    assert isinstance(r, spr.RunnerResult)


def test_writing_a_verdict_to_the_real_stdout_does_not_spoof_the_result(engine):
    code = (
        "import sys\n"
        "sys.__stdout__.write('{\"ok\": true, \"result\": \"SPOOF\"}\\n')\n"
        "sys.__stdout__.flush()\n"
        "raise ValueError('real')\n"
    )
    r = run_code(code, engine)
    assert not r.ok and r.error == "ValueError: real" and r.result is None


def test_replacing_json_dumps_does_not_spoof_the_result(engine):
    code = (
        "import json\n"
        "json.dumps = lambda *a, **k: '{\"ok\": true, \"result\": \"SPOOFED\"}'\n"
        "raise ValueError('real')\n"
    )
    r = run_code(code, engine)
    assert not r.ok and r.error == "ValueError: real" and r.result is None


def test_result_dict_keys_like_the_original(engine):
    r = run_code("result = {1: 'a', None: 2, True: 3}", engine)
    assert r.ok and r.result == {"1": 3, "null": 2}


def test_policy_file_that_is_a_directory_is_refused(engine, tmp_path):
    with pytest.raises(ValueError):
        RunnerPolicy.from_file(tmp_path)
    with pytest.raises(ValueError):
        run_code("result = 1", engine, policy_file=str(tmp_path))


def test_policy_file_with_a_sandbox_table(engine, tmp_path):
    path = tmp_path / "sb.toml"
    path.write_text("[policy]\ntimeout_seconds = 3\n\n[policy.sandbox]\nmax_file_size_mb = 1\n")
    p = RunnerPolicy.from_file(path)
    assert p.timeout_seconds == 3 and p.sandbox.get("max_file_size_mb") == 1
    r = run_code("import pathlib\npathlib.Path('big').write_bytes(b'x' * (2 * 1024 * 1024))", engine, policy=p)
    assert not r.ok, r
@pytest.mark.parametrize(
    "kwargs",
    [
        {"pool_size": 0},
        {"pool_size": -1},
        {"max_sessions": 0},
        {"preload": ["os; import sys"]},
        {"warmup": "  "},
    ],
    ids=["pool0", "pool-negative", "max_sessions0", "preload-not-a-module", "warmup-empty"],
)
def test_bad_local_engine_arguments_are_value_errors(engine, kwargs):
    """Was a bug, fixed: argument refusals of LocalEngine come out as RuntimeError ('pool_size must be
    at least 1', 'max_sessions must be at least 1', 'preload: ... is not a module name')
    or OverflowError (a negative pool_size), though the package's rule (src/errors.rs) is
    ValueError for refused arguments, RuntimeError for failures of the machinery."""
    with pytest.raises(ValueError):
        spr.LocalEngine(venv_dir=engine.venv_dir, **kwargs)
def test_a_forked_child_can_run_or_fails_promptly(engine):
    """Was a bug, fixed: once spr's tokio runtime has started in a process, a child forked from it
    (multiprocessing's default 'fork' start method on Linux before Python 3.14, or
    os.fork) hangs forever in its first run, even on an engine of its own: the child
    inherits the runtime's OnceLock but none of its threads. It should either work
    (re-create the runtime after fork) or raise at once."""
    assert run_code("result = 1", engine).ok  # the runtime is up in this process
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child(venv, q):
        try:
            eng = spr.LocalEngine(venv_dir=venv, pool_size=1)
            q.put(("ok", spr.run_code("result = 2", eng).result))
        except BaseException as e:  # noqa: BLE001 - report whatever happened
            q.put(("raised", type(e).__name__))

    proc = ctx.Process(target=child, args=(engine.venv_dir, queue))
    proc.start()
    proc.join(20)
    hung = proc.is_alive()
    if hung:
        proc.kill()
        proc.join(5)
    assert not hung, "the forked child hung in run_code for 20 s"
    outcome = queue.get(timeout=5)
    assert outcome == ("ok", 2) or outcome[0] == "raised", outcome


def test_a_request_too_large_for_a_frame_is_refused_and_the_worker_kept(engine):
    big = "a" * (70 << 20)
    r = spr.run_code("result = len(x)", engine, input_data={"x": big})
    assert not r.ok and r.exit_code == 2, r
    assert "too large to send" in r.error
    assert spr.run_code("result = 1", engine).result == 1


def test_a_cell_too_large_for_a_frame_keeps_the_session(engine):
    with engine.session() as s:
        s.run("kept = 41")
        r = s.run("len(x)", {"x": "a" * (70 << 20)})
        assert not r.ok and not r.session_lost and "too large to send" in r.error, r
        assert s.run("kept + 1").value == 42


@pytest.mark.parametrize(
    "kwargs",
    [{"pool_size": 2**61}, {"max_sessions": 2**61}, {"pool_size": 257}, {"max_sessions": 4097}],
)
def test_counts_beyond_spr_s_bounds_are_value_errors(tmp_path, kwargs):
    with pytest.raises(ValueError, match="must be at most"):
        spr.LocalEngine(venv_dir=str(tmp_path / "v"), **kwargs)
    with pytest.raises(ValueError, match="must be at most"):
        spr.DockerEngine(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"acquire_timeout_seconds": 2**63}, "acquire_timeout_seconds"),
        ({"ttl_seconds": 2**70}, "ttl_seconds"),
        ({"ssh_port": 70000}, "ssh_port"),
        ({"ssh_host": "-oProxyCommand=x"}, "ssh_host"),
        ({"ssh_host": "h", "ssh_user": "-x"}, "ssh_user"),
    ],
)
def test_docker_options_out_of_range_name_the_option(kwargs, match):
    with pytest.raises(ValueError, match=match):
        spr.DockerEngine(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"packages": [1]}, r"packages\[0\]"),
        ({"preload": [1]}, r"preload\[0\]"),
        ({"sandbox": 1}, "sandbox"),
        ({"warmup": b"x = 1"}, "warmup"),
    ],
)
def test_wrong_types_name_the_argument(tmp_path, kwargs, match):
    with pytest.raises(TypeError, match=match):
        spr.LocalEngine(venv_dir=str(tmp_path / "v"), **kwargs)


def test_a_lone_surrogate_names_its_argument(engine):
    with pytest.raises(ValueError, match="code holds a character"):
        spr.run_code("result = '\ud800'", engine)
    with pytest.raises(ValueError, match="allowed_imports holds a character"):
        spr.run_code("result = 1", engine, policy=spr.RunnerPolicy(allowed_imports=["\ud800"]))


def test_the_original_execute_protocol_is_kept(engine):
    from safe_py_runner.execution import ExecutionRequest

    out = engine.execute(
        ExecutionRequest(
            payload={"code": "result = x + 1", "input_data": {"x": 1}, "policy": {"timeout_seconds": 2}},
            timeout_seconds=2,
        )
    )
    assert out.returncode == 0 and not out.timed_out
    assert json.loads(out.stdout)["result"] == 2


def test_a_subclass_overriding_execute_is_used_by_run_code(engine):
    from safe_py_runner.execution import ExecutionOutcome

    class Wrapped(spr.LocalEngine):
        calls = 0

        def execute(self, request):
            Wrapped.calls += 1
            return ExecutionOutcome(stdout='{"ok": true, "result": 7}', stderr="", returncode=0, timed_out=False)

    wrapped = Wrapped.__new__(Wrapped)
    r = spr.run_code("result = 1", wrapped)
    assert r.ok and r.result == 7 and Wrapped.calls == 1


def test_the_warm_up_runs_once_in_the_worker_before_any_run(engine):
    warmed = spr.LocalEngine(
        venv_dir=engine.venv_dir, pool_size=1, preload=["colorsys"], warmup="import colorsys\ncolorsys.WARM = 7"
    )
    try:
        for _ in range(2):
            r = spr.run_code(
                "import colorsys\nresult = colorsys.WARM\ncolorsys.WARM = 0",
                warmed,
                policy=spr.RunnerPolicy(blocked_imports=[]),
            )
            assert r.ok and r.result == 7, r
    finally:
        warmed.shutdown()
    broken = spr.LocalEngine(venv_dir=engine.venv_dir, pool_size=1, warmup="1/0")
    try:
        r = spr.run_code("result = 1", broken)
        assert not r.ok and "the warm-up failed: ZeroDivisionError" in (r.error or ""), r
    finally:
        broken.shutdown()
