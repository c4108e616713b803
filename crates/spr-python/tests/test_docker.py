"""The Docker engine (spr-runtime:latest): runs, parity with the local engine, sessions,
administration. Hold /tmp/spr-docker.lock around these on the shared machine."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import spr
from spr import RunnerPolicy, run_code

from conftest import missing

PARITY_CASES = [
    ("result = x * 2", {"x": 21}, None),
    ("print('p')\nresult = {'big': 10**30, 'n': None, 'b': [True, False]}", None, None),
    ("import os", None, None),
    ("result = eval('1')", None, None),
    ("import json", None, RunnerPolicy(mode="allow")),
    ("import math\nresult = math.sqrt(x) + helper", {"x": 81},
     RunnerPolicy(mode="allow", allowed_imports=["math"], allowed_globals=["x", "helper"], extra_globals={"helper": 10})),
    ("import sys\nresult = 'r'\nsys.exit(3)", None, None),
    ("raise ValueError('boom')", None, None),
    ("import subprocess", None, None),
    ("import importlib", None, RunnerPolicy(mode="allow", allowed_imports=["importlib"])),
    ("result = __name__", None, None),
]


def _fields(r):
    return (r.ok, r.result, r.stdout, r.error, r.exit_code, r.timed_out)


def test_basic_run(docker_engine):
    r = run_code("print('hi')\nresult = x * 2", docker_engine, input_data={"x": 21})
    assert r.ok, r
    assert (r.result, r.stdout, r.exit_code) == (42, "hi\n", 0)
    assert isinstance(r.sandbox, dict) and r.sandbox.get("engine") == "docker"
    assert docker_engine.kind == "docker"


@pytest.mark.parametrize("code, input_data, policy", PARITY_CASES)
def test_policy_parity_with_the_local_engine(docker_engine, engine, code, input_data, policy):
    local = run_code(code, engine, input_data=input_data, policy=policy)
    docker = run_code(code, docker_engine, input_data=input_data, policy=policy)
    assert _fields(docker) == _fields(local)


def test_timeout_and_memory(docker_engine):
    r = run_code("while True:\n    pass", docker_engine, policy=RunnerPolicy(timeout_seconds=1))
    assert (r.ok, r.timed_out, r.exit_code, r.error) == (False, True, 124, "Execution timed out after 1s")
    r = run_code("x = bytearray(400 * 1024 * 1024)", docker_engine, policy=RunnerPolicy(memory_limit_mb=64))
    assert not r.ok and r.resource_exceeded, r


def test_files_round_trip(docker_engine):
    blob = bytes(range(256))
    r = run_code(
        "import pathlib\npathlib.Path('out.bin').write_bytes(pathlib.Path('in.bin').read_bytes()[::-1])",
        docker_engine,
        files={"in.bin": blob},
        collect=["out.bin"],
    )
    assert r.ok, r
    assert [(f.path, f.data) for f in r.files] == [("out.bin", blob[::-1])]


def test_a_session(docker_engine):
    with docker_engine.session(policy=RunnerPolicy(timeout_seconds=2)) as s:
        assert s.run("import math\nxs = [1, 2, 3]").ok
        assert s.run("sum(xs) * 2").value == 12
        r = s.run("import time\nwhile True:\n    time.sleep(0.05)")
        assert r.timed_out and not r.session_lost
        assert s.run("len(xs)").value == 3
    assert s.closed
    with pytest.raises(spr.SessionClosedError):
        s.run("xs")


def test_admin_lists(docker_engine):
    assert run_code("result = 1", docker_engine).ok  # a pooled container exists now
    containers = docker_engine.list_containers()
    assert containers, "a run just used a pooled container, yet none is listed"
    for c in containers:
        assert isinstance(c, spr.ContainerInfo)
        assert c.id and c.name and c.state
    everything = docker_engine.list_containers(all_states=True)
    assert {c.id for c in containers} <= {c.id for c in everything}
    for image in docker_engine.list_images():
        assert isinstance(image, spr.ImageInfo) and image.id


@pytest.fixture
def foreign_container():
    """A container spr does not manage (created, never started), removed afterwards."""
    docker = shutil.which("docker")
    if docker is None:
        missing("making a container spr does not manage needs the docker CLI")
    made = subprocess.run(
        [docker, "create", "--label", "spr-test=foreign", "spr-runtime:latest", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    cid = made.stdout.strip()
    yield cid
    subprocess.run([docker, "rm", "-f", cid], capture_output=True, timeout=60)


def test_a_non_managed_container_is_refused(docker_engine, foreign_container):
    for cid in (foreign_container, foreign_container[:12], "no-such-container-spr-test"):
        with pytest.raises(ValueError, match="not managed"):
            docker_engine.stop_container(cid)
        with pytest.raises(ValueError, match="not managed"):
            docker_engine.kill_container(cid)
    # still there: nothing was done to it
    docker = shutil.which("docker")
    state = subprocess.run(
        [docker, "inspect", "-f", "{{.State.Status}}", foreign_container],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert state.stdout.strip() == "created"


def _container_of_a_run(eng) -> str:
    # A container's hostname is its short id: this names our own container, never
    # another user's on the shared daemon.
    r = run_code("import platform\nresult = platform.node()", eng)
    assert r.ok, r
    return r.result


def test_killing_a_pooled_container_is_survived(docker_engine):
    mine = _container_of_a_run(docker_engine)
    assert mine in {c.id for c in docker_engine.list_containers()}
    docker_engine.kill_container(mine)
    r = run_code("result = 'after kill'", docker_engine)
    assert r.ok and r.result == "after kill", r
    assert _container_of_a_run(docker_engine) != mine


def test_a_missing_image_is_an_engine_failure_result(docker_engine):  # the fixture: Docker is up
    eng = spr.DockerEngine(container_registry="spr-test-no-such-image:never", pool_size=1)
    try:
        r = run_code("result = 1", eng)
    finally:
        eng.shutdown()
    assert not r.ok and r.exit_code == 125
    assert "spr-test-no-such-image:never" in r.error


def test_the_drop_in_names_its_containers_as_the_original(docker_engine):
    import safe_py_runner

    eng = safe_py_runner.DockerEngine(pool_size=1)
    try:
        r = safe_py_runner.run_code("result = 1", eng)
        assert r.ok, r
        names = [c.name for c in eng.list_containers(all_states=True)]
        assert any(n.startswith("safe-py-runner-") for n in names), names
    finally:
        eng.shutdown()


def test_a_run_writes_tmp_and_the_next_run_does_not_see_it(docker_engine):
    # The original's test_docker_workspace_reset_between_runs, which spr passes.
    code = "from pathlib import Path\nPath('/tmp/marker').write_text('x')\nresult = 1"
    first = spr.run_code(code, docker_engine)
    assert first.ok, first
    second = spr.run_code(
        "from pathlib import Path\nresult = Path('/tmp/marker').exists()", docker_engine
    )
    assert second.ok and second.result is False, second


@pytest.mark.parametrize("prefix", ["", "-x", "a b", "a/b"])
def test_a_bad_container_prefix_is_refused(prefix):
    with pytest.raises(ValueError, match="container_prefix"):
        spr.DockerEngine(container_prefix=prefix)
