"""`LocalEngine` and `DockerEngine`: spr's two engines, with the original's constructors."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence

from . import _native
from ._compat import slotted


@slotted(frozen=True)
class ContainerInfo:
    id: str
    name: str
    image: str
    state: str
    status: str


@slotted(frozen=True)
class ImageInfo:
    id: str
    repository: str
    tag: str
    created_since: str
    size: str


@slotted(frozen=True)
class CleanupSummary:
    removed_containers: int
    removed_images: int


def _strings(name: str, values: Optional[Sequence[str]]) -> List[str]:
    if values is None:
        return []
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, not one string")
    out = list(values)
    for index, value in enumerate(out):
        if not isinstance(value, str):
            raise TypeError(f"{name}[{index}] must be a str, got {type(value).__name__}")
    return out


def _pinned(packages: Optional[Sequence[str]]) -> List[str]:
    return _native.validate_pinned_packages(_strings("packages", packages))


def _text(name: str, value: Any) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def _path(name: str, value: Any) -> Optional[str]:
    """A path argument: str, bytes or path-like."""
    if value is None:
        return None
    try:
        return os.fsdecode(os.fspath(value))
    except TypeError:
        raise TypeError(f"{name} must be a path (str, bytes or os.PathLike), got {type(value).__name__}") from None


#: What the native module's integer types hold; the engines themselves refuse what is
#: out of their range (`pool_size must be at most 256, ...`).
_U64 = 2**63 - 1
_U32 = 2**32 - 1


def _count(
    name: str, value: Optional[int], *, zero_is_default: bool = False, maximum: int = _U64
) -> Optional[int]:
    """A count option: ``None`` is the default; ``0`` too where the original said so
    (``value or default``); anything else a positive integer its Rust type holds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value == 0 and zero_is_default:
        return None
    if value < 1:
        raise ValueError(f"{name} must be at least 1 (omit it for the default), got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return value


def _modules(preload: Optional[Sequence[str]]) -> List[str]:
    if isinstance(preload, str):
        return [preload]
    return _strings("preload", preload)


class Engine:
    """What both engines share: runs, sessions, warm-up and shutdown.

    One engine is meant to be shared: by every thread (each run releases the GIL) and by
    every task of an event loop (``run_code_async``). Runs proceed in parallel up to the
    engine's pool size; the rest wait for a worker.
    """

    __slots__ = ("_native", "__weakref__")

    _native: Any

    def __init__(self) -> None:
        raise TypeError("spr.Engine is the engines' common base: make a LocalEngine or a DockerEngine")

    @property
    def kind(self) -> str:
        """``"local"`` or ``"docker"``."""
        return self._native.kind

    def warm_up(self) -> None:
        """Start every warm worker now, so the first runs are as fast as the later ones."""
        self._native.warm_up()

    def shutdown(self) -> None:
        """Stop the idle workers. The engine starts new ones if it is used again."""
        self._native.shutdown()

    close = shutdown

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def session(self, policy=None, policy_file=None):
        """Open a :class:`spr.Session`: one sandboxed interpreter whose globals, imports
        and files persist from one cell to the next, under a policy fixed for its life."""
        from ._session import Session

        return Session._open(self, policy, policy_file)

    @property
    def open_sessions(self) -> int:
        return self._native.open_sessions()

    def execute(self, request):
        """The original's engine protocol: run ``request.payload`` (``code``,
        ``input_data``, ``policy``) and answer an ``ExecutionOutcome`` whose stdout is the
        original worker's JSON. For code written against that protocol (wrappers, direct
        calls); ``run_code`` does not go through it."""
        from ._foreign import ExecutionOutcome
        from ._policy import FIELDS, RunnerPolicy
        from ._run import run_code

        payload = dict(request.payload)
        policy_keys = dict(payload.get("policy") or {})
        policy = RunnerPolicy(**{k: v for k, v in policy_keys.items() if k in FIELDS})
        result = run_code(payload.get("code", ""), self, payload.get("input_data"), policy)
        if result.timed_out:
            return ExecutionOutcome("", "", 124, True, result.error)
        if result.exit_code == 125:
            return ExecutionOutcome("", result.stderr, 125, False, result.error)
        body = {
            "ok": result.ok,
            "result": result.result,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "timed_out": result.timed_out,
            "resource_exceeded": result.resource_exceeded,
            "error": result.error,
        }
        return ExecutionOutcome(json.dumps(body), "", result.exit_code, False, None)


class LocalEngine(Engine):
    """Runs code in fresh processes forked from warm, sandboxed Python workers.

    ``venv_dir`` is the virtual environment folder itself; it is created (with
    ``venv_manager``: ``"uv"``, ``"python"``, or ``"auto"`` for uv when it is on PATH) and
    ``packages`` (pinned ``name==version``) installed into it, when missing. Like the
    original, the constructor prepares the venv: a failure raises ``RuntimeError``.
    ``preload`` names modules every worker imports once, before any request, so runs
    fork with them loaded (each run gets its own copy). ``warmup`` is Python every worker
    runs after them (your code, never a caller's): what the modules set up on first
    use is then ready in every run. ``python`` is the interpreter a missing venv is
    created with (an existing venv keeps its own).
    """

    __slots__ = ("venv_dir", "venv_manager", "packages")

    def __init__(
        self,
        *,
        venv_dir: str,
        venv_manager: str = "auto",
        packages: Optional[Sequence[str]] = None,
        pool_size: Optional[int] = None,
        preload: Optional[Sequence[str]] = None,
        sandbox: Optional[str] = None,
        python: Optional[str] = None,
        max_sessions: Optional[int] = None,
        scratch_dir: Optional[str] = None,
        warmup: Optional[str] = None,
    ) -> None:
        venv_dir = _path("venv_dir", venv_dir)
        if venv_dir is None or not venv_dir.strip():
            raise ValueError("LocalEngine requires a non-empty 'venv_dir'")
        pinned = _pinned(packages)
        if venv_manager not in ("auto", "uv", "python"):
            raise ValueError("venv_manager must be either 'uv' or 'python' (or 'auto')")
        _text("sandbox", sandbox)
        _text("warmup", warmup)
        self.venv_dir = os.path.expanduser(venv_dir)
        self.venv_manager = venv_manager
        self.packages = pinned
        native = _native.Engine.local(
            self.venv_dir,
            venv_manager=venv_manager,
            packages=pinned,
            pool_size=_count("pool_size", pool_size),
            preload=_modules(preload),
            sandbox=sandbox,
            python=_path("python", python),
            max_sessions=_count("max_sessions", max_sessions),
            scratch_dir=_path("scratch_dir", scratch_dir),
            warmup=warmup,
        )
        # As the original: the venv exists (with its packages) once the constructor returns,
        # and a failure to make it is the constructor's.
        native.prepare()
        self._native = native

    def __repr__(self) -> str:
        return f"LocalEngine(venv_dir={self.venv_dir!r})"


class DockerEngine(Engine):
    """Runs code in hardened, pooled containers of spr's runtime image (or
    ``container_registry``, a full image reference), over the Docker API.

    No IO happens in the constructor: the daemon is contacted on first use. ``packages``
    are baked into a derived, cached image. Container names begin with
    ``container_prefix`` (default ``spr``). Administration (``list_containers``,
    ``stop_container``, ...) touches only containers and images spr manages.
    """

    __slots__ = ("_settings",)

    def __init__(
        self,
        *,
        packages: Optional[Sequence[str]] = None,
        container_registry: Optional[str] = None,
        name: Optional[str] = None,
        pool_size: Optional[int] = None,
        max_runs: Optional[int] = None,
        ttl_seconds: Optional[int] = None,
        acquire_timeout_seconds: Optional[int] = None,
        docker_host: Optional[str] = None,
        docker_context: Optional[str] = None,
        ssh_host: Optional[str] = None,
        ssh_user: Optional[str] = None,
        ssh_port: Optional[int] = None,
        ssh_key_path: Optional[str] = None,
        preload: Optional[Sequence[str]] = None,
        max_sessions: Optional[int] = None,
        runtime: Optional[str] = None,
        cpus: Optional[float] = None,
        container_prefix: Optional[str] = None,
        warmup: Optional[str] = None,
    ) -> None:
        pinned = _pinned(packages)
        for name, value in [
            ("container_registry", container_registry),
            ("name", name),
            ("docker_host", docker_host),
            ("docker_context", docker_context),
            ("ssh_host", ssh_host),
            ("ssh_user", ssh_user),
            ("runtime", runtime),
            ("container_prefix", container_prefix),
            ("warmup", warmup),
        ]:
            _text(name, value)
        if ssh_port is not None and (
            isinstance(ssh_port, bool) or not isinstance(ssh_port, int) or not 1 <= ssh_port <= 65535
        ):
            raise ValueError(f"ssh_port must be between 1 and 65535, got {ssh_port!r}")
        if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, (int, float))):
            raise ValueError(f"cpus must be a number of cores, got {cpus!r}")
        self._settings: Dict[str, Any] = dict(
            docker_host=docker_host,
            docker_context=docker_context,
            ssh_host=ssh_host,
            ssh_user=ssh_user,
            ssh_port=ssh_port,
            ssh_key_path=ssh_key_path,
        )
        self._native = _native.Engine.docker(
            image=container_registry,
            packages=pinned,
            name=name,
            pool_size=_count("pool_size", pool_size, zero_is_default=True),
            max_runs=_count("max_runs", max_runs, zero_is_default=True, maximum=_U32),
            ttl_seconds=_count("ttl_seconds", ttl_seconds, zero_is_default=True),
            acquire_timeout_seconds=_count(
                "acquire_timeout_seconds", acquire_timeout_seconds, zero_is_default=True
            ),
            docker_host=docker_host,
            docker_context=docker_context,
            ssh_host=ssh_host,
            ssh_user=ssh_user,
            ssh_port=ssh_port,
            ssh_key_path=_path("ssh_key_path", ssh_key_path),
            preload=_modules(preload),
            max_sessions=_count("max_sessions", max_sessions),
            runtime=runtime,
            cpus=cpus,
            container_prefix=container_prefix,
            warmup=warmup,
        )

    def list_containers(self, all_states: bool = False) -> List[ContainerInfo]:
        return [ContainerInfo(**c) for c in json.loads(self._native.list_containers(all_states))]

    def list_images(self) -> List[ImageInfo]:
        return [ImageInfo(**i) for i in json.loads(self._native.list_images())]

    def stop_container(self, container_id: str, timeout_seconds: int = 10) -> None:
        self._native.stop_container(container_id, timeout_seconds)

    def kill_container(self, container_id: str) -> None:
        self._native.kill_container(container_id)

    def cleanup_stale(self) -> CleanupSummary:
        return CleanupSummary(**json.loads(self._native.cleanup_stale()))

    def _docker_env(self) -> Dict[str, str]:
        """The environment the original handed the docker CLI (spr talks to the API and
        builds its connection from the same settings; kept for callers that read it)."""
        env = dict(os.environ)
        s = self._settings
        if s["ssh_host"]:
            user = f"{s['ssh_user']}@" if s["ssh_user"] else ""
            env["DOCKER_HOST"] = f"ssh://{user}{s['ssh_host']}"
            command = ["ssh"]
            if s["ssh_port"]:
                command += ["-p", str(s["ssh_port"])]
            if s["ssh_key_path"]:
                command += ["-i", os.fspath(s["ssh_key_path"])]
            env["DOCKER_SSH_COMMAND"] = " ".join(command)
        elif s["docker_host"]:
            env["DOCKER_HOST"] = s["docker_host"]
        return env

    def __repr__(self) -> str:
        return "DockerEngine()"
