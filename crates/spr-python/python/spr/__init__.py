"""spr: run untrusted, usually LLM-written Python with guardrails.

The policy is a friendly inner layer; the kernel (namespaces, seccomp, Landlock, cgroups,
or a hardened container) is the boundary. Each run is a fresh process forked from a warm
worker, so a run costs milliseconds and nothing of one run reaches the next.

    >>> import spr
    >>> engine = spr.LocalEngine(venv_dir="/tmp/spr-venv")
    >>> spr.run_code("result = x * 2", engine, input_data={"x": 21}).result
    42
"""

from . import _native
from ._errors import (
    SessionClosedError,
    SessionError,
    SessionLostError,
    SprError,
    TooManySessionsError,
)
from ._engines import CleanupSummary, ContainerInfo, DockerEngine, Engine, ImageInfo, LocalEngine
from ._foreign import ExecutionOutcome, ExecutionRequest
from ._policy import RunnerPolicy
from ._result import File, Output, RunnerResult
from ._run import run_code, run_code_async
from ._session import Session

__version__ = _native.VERSION

__all__ = [
    "CleanupSummary",
    "ContainerInfo",
    "DockerEngine",
    "Engine",
    "ExecutionOutcome",
    "ExecutionRequest",
    "File",
    "ImageInfo",
    "LocalEngine",
    "Output",
    "RunnerPolicy",
    "RunnerResult",
    "Session",
    "SessionClosedError",
    "SessionError",
    "SessionLostError",
    "SprError",
    "TooManySessionsError",
    "run_code",
    "run_code_async",
]
