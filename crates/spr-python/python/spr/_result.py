"""`RunnerResult` and the files and figures a run returns."""

from __future__ import annotations

import base64
import json
from typing import Any, Dict, List, Optional

from ._compat import slotted


@slotted(frozen=True)
class File:
    """A file a run left in its scratch directory that matched a ``collect`` glob."""

    path: str
    data: bytes
    #: The file's size on disk (``data`` is shorter when ``truncated``).
    size: int
    truncated: bool = False

    def text(self, encoding: str = "utf-8") -> str:
        return self.data.decode(encoding)


@slotted(frozen=True)
class Output:
    """A rich output of a run: every matplotlib figure left open comes back as a PNG."""

    mime_type: str
    data: bytes


@slotted
class RunnerResult:
    """What a run did. The first eight fields are the original safe-py-runner's, in its
    order; the rest are spr's."""

    ok: bool
    result: Any = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    resource_exceeded: bool = False
    error: Optional[str] = None
    exit_code: int = 0
    duration_ms: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    #: In a session: the value of the cell's last expression (JSON-safe).
    value: Any = None
    #: The run lost its session (its process was killed); later cells are refused.
    session_lost: bool = False
    files: List[File] = None  # type: ignore[assignment]
    outputs: List[Output] = None  # type: ignore[assignment]
    #: The receipt of the sandbox the run had (what was applied, what was missing).
    sandbox: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        if self.files is None:
            self.files = []
        if self.outputs is None:
            self.outputs = []

    @classmethod
    def _from_parts(cls, parts) -> "RunnerResult":
        """From the native module's ``(record, result, value)`` JSON texts. The run's own
        values are decoded apart: one this Python refuses (more digits than
        ``sys.get_int_max_str_digits()``, nesting deeper than it recurses) fails the
        result with a message, not the caller with an exception."""
        record, result_text, value_text = parts
        raw = json.loads(record)
        problems = []
        result = _decode(result_text, "result", problems)
        value = None if value_text is None else _decode(value_text, "value", problems)
        files = [
            File(
                path=f["path"],
                data=base64.b64decode(f.get("content", "")),
                size=int(f.get("size", 0)),
                truncated=bool(f.get("truncated", False)),
            )
            for f in raw.get("files") or ()
        ]
        outputs = [
            Output(mime_type=o["mime_type"], data=base64.b64decode(o.get("data", "")))
            for o in raw.get("outputs") or ()
        ]
        error = raw.get("error")
        if problems:
            error = "; ".join(([error] if error else []) + problems)
        return cls(
            ok=bool(raw["ok"]) and not problems,
            result=result,
            stdout=raw.get("stdout", ""),
            stderr=raw.get("stderr", ""),
            timed_out=bool(raw.get("timed_out", False)),
            resource_exceeded=bool(raw.get("resource_exceeded", False)),
            error=error,
            exit_code=int(raw.get("exit_code", 0)),
            duration_ms=float(raw.get("duration_ms", 0.0)),
            stdout_truncated=bool(raw.get("stdout_truncated", False)),
            stderr_truncated=bool(raw.get("stderr_truncated", False)),
            value=value,
            session_lost=bool(raw.get("session_lost", False)),
            files=files,
            outputs=outputs,
            sandbox=raw.get("sandbox"),
        )


def _decode(text: str, what: str, problems: List[str]) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        problems.append(
            f"The run's {what} cannot be decoded by this Python ({type(exc).__name__}: {exc})"
        )
        return None
