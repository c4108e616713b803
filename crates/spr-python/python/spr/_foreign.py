"""Engines that are not spr's: the original's duck-typed ``execute(request)`` protocol.

``run_code`` accepted any object with ``execute(ExecutionRequest) -> ExecutionOutcome``;
spr keeps that door open for callers who wrote their own engine, and assembles the
result by the original's rules.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from ._compat import slotted
from ._policy import ORIGINAL_FIELDS
from ._result import RunnerResult


@slotted
class ExecutionRequest:
    """What an engine of the original's protocol is asked to run."""

    payload: Dict[str, Any]
    timeout_seconds: int


@slotted
class ExecutionOutcome:
    """What an engine of the original's protocol answers."""

    stdout: str
    stderr: str
    returncode: int
    timed_out: bool
    error: Optional[str] = None


def run_foreign(engine: Any, code: str, input_data: Any, policy) -> RunnerResult:
    payload = json.loads(
        json.dumps(
            {
                "code": code,
                "input_data": input_data or {},
                "policy": {k: getattr(policy, k) for k in ORIGINAL_FIELDS},
            }
        )
    )
    request = ExecutionRequest(payload=payload, timeout_seconds=max(1, int(policy.timeout_seconds)))
    outcome = engine.execute(request)
    if outcome.timed_out:
        return RunnerResult(
            ok=False,
            timed_out=True,
            error=outcome.error or f"Execution timed out after {policy.timeout_seconds}s",
            exit_code=124,
        )
    if outcome.error and not (outcome.stdout or "").strip():
        return RunnerResult(
            ok=False, error=outcome.error, stderr=outcome.stderr, exit_code=outcome.returncode
        )
    try:
        data = json.loads((outcome.stdout or "").strip() or "{}")
    except json.JSONDecodeError:
        return RunnerResult(
            ok=False,
            error="Runner returned invalid JSON",
            stderr=outcome.stderr,
            exit_code=outcome.returncode,
        )
    if not isinstance(data, dict):
        return RunnerResult(
            ok=False,
            error="Runner returned JSON that is not an object",
            stderr=outcome.stderr,
            exit_code=outcome.returncode,
        )
    return RunnerResult(
        ok=bool(data.get("ok")),
        result=data.get("result"),
        stdout=str(data.get("stdout", "")),
        stderr=str(data.get("stderr", "")) or outcome.stderr,
        timed_out=bool(data.get("timed_out", False)),
        resource_exceeded=bool(data.get("resource_exceeded", False)),
        error=data.get("error") or outcome.error,
        exit_code=outcome.returncode,
    )
