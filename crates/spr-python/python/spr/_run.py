"""`run_code` and `run_code_async`: one run of untrusted code on an engine."""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Optional

from ._aio import await_native
from ._attach import call_args, send
from ._engines import Engine
from ._policy import RunnerPolicy
from ._result import RunnerResult

_BOTH = "Provide either 'policy' or 'policy_file', not both"


def _policy_args(policy: Optional[RunnerPolicy], policy_file: Any):
    if policy is not None and policy_file is not None:
        raise ValueError(_BOTH)
    if policy is not None and not isinstance(policy, RunnerPolicy):
        raise TypeError(f"policy must be a RunnerPolicy, got {type(policy).__name__}")
    policy_json = None if policy is None else policy.to_json()
    return policy_json, _path_arg(policy_file)


def _native_of(engine: Any):
    # A subclass that brings its own `execute` is an engine of the original's protocol.
    if isinstance(engine, Engine) and type(engine).execute is Engine.execute:
        return engine._native
    return None


def _path_arg(policy_file: Any) -> Optional[str]:
    if policy_file is None:
        return None
    try:
        return os.fsdecode(os.fspath(policy_file))
    except TypeError:
        raise TypeError(
            f"policy_file must be a path (str, bytes or os.PathLike), got {type(policy_file).__name__}"
        ) from None


def run_code(
    code: str,
    engine: Engine,
    input_data: Optional[Mapping[str, Any]] = None,
    policy: Optional[RunnerPolicy] = None,
    policy_file: Optional[str] = None,
    *,
    files: Optional[Mapping[str, Any]] = None,
    collect: Optional[Iterable[str]] = None,
) -> RunnerResult:
    """Run ``code`` on ``engine`` and return its :class:`RunnerResult`.

    ``input_data``'s keys become the code's globals; the code's ``result`` variable comes
    back as ``result.result``. ``policy`` or ``policy_file`` (not both) set the rules;
    neither means the defaults. ``files`` (``{"relative/path": str | bytes}``) are written
    into the run's scratch directory first; files matching the ``collect`` globs come
    back in ``result.files``, open matplotlib figures in ``result.outputs``.

    Refusals before the run (a bad policy, input or path) raise ``ValueError``; whatever
    happens once the code runs is in the result. The GIL is released while it runs.
    """
    kwargs = call_args(code, input_data, files, collect)
    native = _native_of(engine)
    if native is None:
        return _run_other(code, engine, input_data, policy, policy_file, files, collect)
    kwargs["policy_json"], kwargs["policy_file"] = _policy_args(policy, policy_file)
    return RunnerResult._from_parts(send(native.run, code=code, **kwargs))


async def run_code_async(
    code: str,
    engine: Engine,
    input_data: Optional[Mapping[str, Any]] = None,
    policy: Optional[RunnerPolicy] = None,
    policy_file: Optional[str] = None,
    *,
    files: Optional[Mapping[str, Any]] = None,
    collect: Optional[Iterable[str]] = None,
) -> RunnerResult:
    """:func:`run_code` for asyncio: the run proceeds on spr's own threads and the event
    loop stays free. Cancelling the awaiting task kills the run."""
    kwargs = call_args(code, input_data, files, collect)
    native = _native_of(engine)
    if native is None:
        raise TypeError("run_code_async needs a spr engine (spr.LocalEngine or spr.DockerEngine)")
    kwargs["policy_json"], kwargs["policy_file"] = _policy_args(policy, policy_file)
    parts = await await_native(lambda callback: send(native.submit, callback, code=code, **kwargs))
    return RunnerResult._from_parts(parts)


def _run_other(code, engine, input_data, policy, policy_file, files, collect) -> RunnerResult:
    if engine is None or not callable(getattr(engine, "execute", None)):
        raise TypeError(
            "engine must be spr.LocalEngine, spr.DockerEngine, or an object with "
            f"execute(request), got {type(engine).__name__}"
        )
    if files or collect:
        raise ValueError("files and collect need a spr engine")
    if policy is not None and policy_file is not None:
        raise ValueError(_BOTH)
    if policy_file is not None:
        policy = RunnerPolicy.from_file(policy_file)
    elif policy is None:
        policy = RunnerPolicy()
    elif policy.config_path is not None:
        policy = RunnerPolicy.from_file(policy.config_path)
    from ._foreign import run_foreign

    return run_foreign(engine, code, input_data, policy)
