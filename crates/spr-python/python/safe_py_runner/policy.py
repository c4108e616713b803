"""The original's ``safe_py_runner.policy`` module: the policy and result types."""

from spr import RunnerPolicy, RunnerResult

__all__ = ["RunnerPolicy", "RunnerResult"]
