"""What an engine of the original's duck-typed protocol takes and returns."""

from spr import ExecutionOutcome, ExecutionRequest

__all__ = ["ExecutionOutcome", "ExecutionRequest"]
