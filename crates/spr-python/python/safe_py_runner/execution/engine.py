"""The original's engine protocol: anything with ``execute(ExecutionRequest)``."""

from __future__ import annotations

from typing import Protocol

from .types import ExecutionOutcome, ExecutionRequest


class ExecutionEngine(Protocol):
    def execute(self, request: ExecutionRequest) -> ExecutionOutcome: ...
