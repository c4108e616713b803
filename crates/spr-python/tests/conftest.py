"""Shared fixtures of spr's Python suite: real engines over real venvs, no mocks.

A prerequisite that is missing (Docker, the runtime image, the data-stack venv) fails the
test under ``CI=true`` and skips it, saying what is missing, everywhere else.
"""

from __future__ import annotations

import _thread
import os
import shutil
import subprocess
import threading
from typing import Any, Callable

import pytest

import spr

RUNTIME_IMAGE = "spr-runtime:latest"
DATASTACK_DEFAULT = "/opt/spr-datastack"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    """Fail under CI, skip elsewhere: a prerequisite of the test is not there."""
    if _in_ci():
        pytest.fail(f"prerequisite missing under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def interrupt_during(call: Callable[[], Any], after: float = 0.3) -> None:
    """Call ``call()`` on the main thread and simulate Ctrl-C ``after`` seconds into it;
    assert that it raised KeyboardInterrupt. The timer starts inside the ``raises`` block,
    so a late start (a loaded machine) cannot let the interrupt escape the test."""
    assert threading.current_thread() is threading.main_thread()
    timer = threading.Timer(after, _thread.interrupt_main)
    try:
        with pytest.raises(KeyboardInterrupt):
            timer.start()
            call()
    finally:
        timer.cancel()


@pytest.fixture(scope="session")
def engine(tmp_path_factory) -> spr.LocalEngine:
    """One local engine for the whole suite, over a venv made in pytest's tmp dir."""
    venv = tmp_path_factory.mktemp("spr") / "venv"
    eng = spr.LocalEngine(venv_dir=str(venv), venv_manager="auto", pool_size=2)
    yield eng
    eng.shutdown()


def _docker_problem(eng: spr.DockerEngine) -> str | None:
    """Why Docker tests cannot run here, or None. Asks the daemon through spr itself
    (spr talks to the Docker API, it needs no docker CLI)."""
    try:
        eng.list_containers()
    except (RuntimeError, ValueError) as e:
        return f"the Docker daemon is unreachable: {e}"
    docker = shutil.which("docker")
    if docker is not None:
        image = subprocess.run(
            [docker, "image", "inspect", RUNTIME_IMAGE], capture_output=True, text=True, timeout=60
        )
        if image.returncode != 0:
            return f"the runtime image {RUNTIME_IMAGE} is missing (build it with `cargo xtask image`)"
        return None
    r = spr.run_code("result = 1", eng)
    if not r.ok:
        return f"a first run on {RUNTIME_IMAGE} failed (is the image built?): {r.error}"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> spr.DockerEngine:
    """A Docker engine over spr's runtime image; fails under CI, skips elsewhere, when
    Docker or the image is missing."""
    eng = spr.DockerEngine(pool_size=1, max_sessions=2)
    problem = _docker_problem(eng)
    if problem is not None:
        missing(f"Docker tests need Docker: {problem}")
    yield eng
    eng.shutdown()


@pytest.fixture(scope="session")
def datastack() -> spr.LocalEngine:
    """A local engine over the pinned data stack (numpy, pandas, matplotlib)."""
    venv = os.environ.get("SPR_DATASTACK_VENV", DATASTACK_DEFAULT)
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        missing(
            f"the data-stack venv {venv} is missing (set SPR_DATASTACK_VENV or run "
            ".ci/datastack-setup.sh)"
        )
    check = subprocess.run(
        [python, "-c", "import numpy, pandas, matplotlib"], capture_output=True, text=True
    )
    if check.returncode != 0:
        missing(f"the data-stack venv {venv} lacks numpy/pandas/matplotlib: {check.stderr.strip()}")
    eng = spr.LocalEngine(venv_dir=venv, pool_size=1)
    yield eng
    eng.shutdown()
