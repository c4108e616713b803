"""safe_py_runner, backed by spr: the original package's API with spr underneath.

Switching is an import change: ``from safe_py_runner import LocalEngine, run_code`` keeps
working, each run costs milliseconds instead of tens of them, and it runs under a
kernel boundary. Where spr deliberately differs, docs/PYTHON.md says so and why.
"""

from .policy import RunnerPolicy, RunnerResult
from .runner import run_code
from .execution.docker_engine import DockerEngine
from .execution.local_engine import LocalEngine

__all__ = ["RunnerPolicy", "RunnerResult", "run_code", "LocalEngine", "DockerEngine"]
