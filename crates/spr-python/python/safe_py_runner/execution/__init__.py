"""The original's ``safe_py_runner.execution`` package: the engine protocol's types."""

from .engine import ExecutionEngine
from .types import ExecutionOutcome, ExecutionRequest

__all__ = ["ExecutionEngine", "ExecutionOutcome", "ExecutionRequest"]
