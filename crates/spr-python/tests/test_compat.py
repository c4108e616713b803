"""The original safe-py-runner's API on spr: imports, messages, field order, SystemExit."""

from __future__ import annotations

import dataclasses

import pytest

import spr

ORIGINAL_RESULT_FIELDS = [
    "ok",
    "result",
    "stdout",
    "stderr",
    "timed_out",
    "resource_exceeded",
    "error",
    "exit_code",
]

ORIGINAL_POLICY_FIELDS = [
    "mode",
    "timeout_seconds",
    "memory_limit_mb",
    "max_output_kb",
    "allowed_imports",
    "blocked_imports",
    "allowed_builtins",
    "blocked_builtins",
    "allowed_globals",
    "blocked_globals",
    "extra_globals",
    "config_path",
]


def test_top_level_imports():
    from safe_py_runner import DockerEngine, LocalEngine, RunnerPolicy, RunnerResult, run_code

    import safe_py_runner

    assert sorted(safe_py_runner.__all__) == sorted(
        ["RunnerPolicy", "RunnerResult", "run_code", "LocalEngine", "DockerEngine"]
    )
    # The drop-in's DockerEngine is spr's, naming its containers as the original did.
    assert LocalEngine is spr.LocalEngine and issubclass(DockerEngine, spr.DockerEngine)
    assert RunnerPolicy is spr.RunnerPolicy and RunnerResult is spr.RunnerResult
    assert run_code is spr.run_code


def test_submodule_imports():
    import safe_py_runner
    from safe_py_runner.execution import ExecutionEngine, ExecutionOutcome, ExecutionRequest
    from safe_py_runner.execution.capabilities import (
        BackendCapabilities,
        capabilities_for_backend,
        preflight_validate_backend_capabilities,
    )
    from safe_py_runner.execution.config import (
        DEFAULT_DOCKER_IMAGE,
        CleanupSummary,
        ContainerInfo,
        DockerPoolSettings,
        ImageInfo,
        default_pool_settings,
        env_hash,
        validate_pinned_packages,
    )
    from safe_py_runner.execution.docker_engine import DockerEngine
    from safe_py_runner.execution.docker_pool import ContainerLease, should_rotate
    from safe_py_runner.execution.engine import ExecutionEngine as EE
    from safe_py_runner.execution.local_engine import LocalEngine
    from safe_py_runner.execution.types import ExecutionOutcome as EO, ExecutionRequest as ER
    from safe_py_runner.policy import RunnerPolicy, RunnerResult
    from safe_py_runner.runner import run_code

    assert EE is ExecutionEngine and EO is ExecutionOutcome and ER is ExecutionRequest
    assert ExecutionOutcome is spr.ExecutionOutcome
    assert issubclass(DockerEngine, spr.DockerEngine) and LocalEngine is spr.LocalEngine
    assert DockerEngine is safe_py_runner.DockerEngine
    assert run_code is spr.run_code and RunnerPolicy is spr.RunnerPolicy and RunnerResult is spr.RunnerResult
    assert DEFAULT_DOCKER_IMAGE == "spr-runtime:latest"
    assert {CleanupSummary, ContainerInfo, ImageInfo} <= {spr.CleanupSummary, spr.ContainerInfo, spr.ImageInfo}
    assert capabilities_for_backend("localengine") == BackendCapabilities(True, True, True, True)
    assert capabilities_for_backend("other") == BackendCapabilities(False, False, False, False)
    assert preflight_validate_backend_capabilities("local") is None
    s = default_pool_settings(2.7)
    assert isinstance(s, DockerPoolSettings) and (s.max_runs, s.ttl_seconds, s.acquire_timeout) == (25, 600, 4)
    assert validate_pinned_packages([" b==1 ", "a==2", "", "a==2"]) == ["a==2", "b==1"]
    # The original's test vectors.
    assert env_hash(python_version="3.11", packages=[]) == "e4c854fa572ecf94"
    assert env_hash(python_version="3.11", packages=["packaging==24.1"], namespace="itest") == "97062ee1ea27327e"
    lease = ContainerLease("c", created_at=0.0, last_used_at=100.0, run_count=0)
    settings = DockerPoolSettings(pool_size=1, max_runs=2, ttl_seconds=10, acquire_timeout=1)
    assert should_rotate(lease, settings, now=10.0)  # TTL counts from creation
    assert not should_rotate(lease, settings, now=9.0)
    lease.run_count = 2
    assert should_rotate(lease, settings, now=0.0)


def test_runner_result_field_order():
    names = [f.name for f in dataclasses.fields(spr.RunnerResult)]
    assert names[:8] == ORIGINAL_RESULT_FIELDS
    r = spr.RunnerResult(True, 1, "o", "e", False, False, None, 0)
    assert (r.ok, r.result, r.stdout, r.stderr, r.exit_code) == (True, 1, "o", "e", 0)


def test_runner_policy_field_order_and_defaults():
    names = [f.name for f in dataclasses.fields(spr.RunnerPolicy)]
    assert names[: len(ORIGINAL_POLICY_FIELDS)] == ORIGINAL_POLICY_FIELDS
    p = spr.RunnerPolicy()
    assert (p.mode, p.timeout_seconds, p.memory_limit_mb, p.max_output_kb) == ("restrict", 5, 256, 128)
    assert p.blocked_imports == ["os", "subprocess", "socket", "ctypes", "importlib"]
    assert p.blocked_builtins == ["eval", "exec", "open", "compile", "breakpoint"]
    assert p.allowed_imports == [] and p.extra_globals == {} and p.config_path is None
    # list defaults are fresh copies
    p.blocked_imports.append("json")
    assert "json" not in spr.RunnerPolicy().blocked_imports
    positional = spr.RunnerPolicy("allow", 3)
    assert positional.mode == "allow" and positional.timeout_seconds == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"venv_dir": ""}, "LocalEngine requires a non-empty 'venv_dir'"),
        ({"venv_dir": "   "}, "LocalEngine requires a non-empty 'venv_dir'"),
        (
            {"venv_dir": "/nonexistent/spr-never", "packages": ["pandas"]},
            "Package specs must be pinned as 'name==version'. Invalid package: pandas",
        ),
        (
            {"venv_dir": "/nonexistent/spr-never", "packages": ["pandas>=2"]},
            "Package specs must be pinned as 'name==version'. Invalid package: pandas>=2",
        ),
        (
            {"venv_dir": "/nonexistent/spr-never", "venv_manager": "pip"},
            "venv_manager must be either 'uv' or 'python'",
        ),
    ],
)
def test_local_engine_argument_messages(kwargs, message, tmp_path):
    with pytest.raises(ValueError) as info:
        spr.LocalEngine(**kwargs)
    assert message in str(info.value)


def test_local_engine_checks_packages_before_touching_the_filesystem(tmp_path):
    venv = tmp_path / "never"
    with pytest.raises(ValueError):
        spr.LocalEngine(venv_dir=str(venv), packages=["x"])
    assert not venv.exists()


def test_local_engine_arguments_are_keyword_only(tmp_path):
    with pytest.raises(TypeError):
        spr.LocalEngine(str(tmp_path / "v"))  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"docker_context": "c", "docker_host": "tcp://h:2375"}, "Use either docker_context or docker_host/ssh settings, not both"),
        ({"docker_context": "c", "ssh_host": "h"}, "Use either docker_context or docker_host/ssh settings, not both"),
        ({"ssh_user": "alice"}, "ssh_user requires ssh_host"),
        ({"ssh_port": 2222}, "ssh_port requires ssh_host"),
        ({"ssh_key_path": "/k"}, "ssh_key_path requires ssh_host"),
        ({"packages": ["pandas"]}, "Package specs must be pinned as 'name==version'. Invalid package: pandas"),
    ],
)
def test_docker_engine_argument_messages(kwargs, message):
    with pytest.raises(ValueError) as info:
        spr.DockerEngine(**kwargs)
    assert str(info.value) == message


def test_docker_engine_constructor_does_no_io():
    # No daemon at this address: the constructor must not notice.
    eng = spr.DockerEngine(docker_host="tcp://127.0.0.1:9", pool_size=0, max_runs=0)
    assert eng.kind == "docker"


def test_docker_env_like_the_original():
    eng = spr.DockerEngine(ssh_host="example.com", ssh_user="alice", ssh_port=2222)
    env = eng._docker_env()
    assert env["DOCKER_HOST"] == "ssh://alice@example.com"
    assert "-p 2222" in env["DOCKER_SSH_COMMAND"]


def test_both_policy_and_file_message(engine, tmp_path):
    from safe_py_runner import RunnerPolicy, run_code

    with pytest.raises(ValueError) as info:
        run_code("result = 1", engine, policy=RunnerPolicy(), policy_file=str(tmp_path / "p.toml"))
    assert str(info.value) == "Provide either 'policy' or 'policy_file', not both"


def test_the_original_readme_examples(engine):
    from safe_py_runner import RunnerPolicy, run_code

    assert run_code("import math\nresult = math.sqrt(input_data['x'])", engine, input_data={"x": 81}).result == 9.0
    r = run_code(
        "import math\nresult = math.sqrt(x) + helper",
        engine,
        input_data={"x": 81},
        policy=RunnerPolicy(
            mode="allow",
            allowed_imports=["math"],
            allowed_builtins=["print"],
            allowed_globals=["x", "helper"],
            extra_globals={"helper": 10},
        ),
    )
    assert r.ok and r.result == 19.0, r
    r = run_code("result = customer['name'].upper()", engine, input_data={"customer": {"name": "ada"}})
    assert r.result == "ADA"
    r = run_code("result = eval('1')", engine)
    assert r.error == "NameError: name 'eval' is not defined"
    r = run_code("import importlib", engine, policy=RunnerPolicy(mode="allow", allowed_imports=["importlib"]))
    assert r.error == "ImportError: Import 'importlib' is blocked by policy"
    r = run_code("import json", engine, policy=RunnerPolicy(mode="allow"))
    assert r.error == "ImportError: Import 'json' is not allowed by policy"


# The original's SystemExit table (original-behavior.md §3.8), code
# `import sys; result='r'; print('p'); <exit>`: (ok, error, exit_code, stderr).
SYSTEM_EXIT_TABLE = [
    ("sys.exit(0)", True, None, 0, ""),
    ("sys.exit(None)", True, None, 0, ""),
    ("raise SystemExit", True, None, 0, ""),
    ("quit()", True, None, 0, ""),
    ("sys.exit(1)", False, "SystemExit: 1", 1, ""),
    ("sys.exit(2)", False, "SystemExit: 2", 2, ""),
    ("exit(3)", False, "SystemExit: 3", 3, ""),
    ("sys.exit('stop now')", False, "SystemExit: stop now", 1, "stop now\n"),
    ("sys.exit(True)", False, "SystemExit: True", 1, ""),
    ("sys.exit(2.5)", False, "SystemExit: 2.5", 1, ""),
    ("sys.exit([1])", False, "SystemExit: [1]", 1, ""),
    ("sys.exit(256)", False, "SystemExit: 256", 0, ""),
    ("sys.exit(-1)", False, "SystemExit: -1", 255, ""),
]


@pytest.mark.parametrize("call, ok, error, exit_code, stderr", SYSTEM_EXIT_TABLE)
def test_system_exit_table(engine, call, ok, error, exit_code, stderr):
    from safe_py_runner import run_code

    r = run_code(f"import sys; result='r'; print('p'); {call}", engine)
    assert (r.ok, r.error, r.exit_code, r.stderr) == (ok, error, exit_code, stderr)
    # result and captured stdout survive every SystemExit
    assert r.result == "r"
    assert r.stdout == "p\n"


def test_result_json_safety_like_the_original(engine):
    from safe_py_runner import run_code

    r = run_code("result = {'t': (1, 2), 's': 'x', 'big': 10**30}", engine)
    assert r.result == {"t": [1, 2], "s": "x", "big": 10**30}
    r = run_code("result = b'ab'", engine)
    assert r.ok and r.result == "b'ab'"
    r = run_code("result = {(1, 2): 3}", engine)
    assert not r.ok and "keys must be str, int, float, bool or None, not tuple" in r.error
    r = run_code("result = 5\ndel result", engine)
    assert r.ok and r.result is None


def test_input_keys_injection_rules(engine):
    from safe_py_runner import RunnerPolicy, run_code

    r = run_code(
        "result = [globals().get(k, 'absent') for k in ('ok', '_hidden', 'not-ident')]",
        engine,
        input_data={"ok": 1, "_hidden": 2, "not-ident": 3},
    )
    assert r.result == [1, "absent", "absent"]
    r = run_code("result = result", engine, input_data={"result": "malicious"})
    assert r.result is None
    r = run_code(
        "result = [input_data['x'], globals().get('x', 'absent')]",
        engine,
        input_data={"x": 1},
        policy=RunnerPolicy(blocked_globals=["x"]),
    )
    assert r.result == [1, "absent"]


def test_the_package_sources_are_python_3_9():
    """The wheel is built for the stable ABI of 3.9 and later; its Python must parse there
    too (this machine's CI has 3.11 only, so the grammar is checked here)."""
    import ast
    import pathlib

    root = pathlib.Path(spr.__file__).resolve().parent.parent
    sources = [p for name in ("spr", "safe_py_runner") for p in (root / name).rglob("*.py")]
    assert len(sources) > 10, sources
    for path in sources:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))
