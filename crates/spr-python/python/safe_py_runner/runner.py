"""The original's ``safe_py_runner.runner`` module: ``run_code``."""

from spr import run_code

__all__ = ["run_code"]
