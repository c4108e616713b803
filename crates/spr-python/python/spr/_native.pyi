"""Types of `spr._native`, the Rust half of the package (JSON text at its edges)."""

from typing import Any, Callable, List, Optional, Sequence, Tuple

VERSION: str

#: A result as the native module returns it: the record (JSON, without `result` and
#: `value`), then the run's `result` and `value` as JSON texts.
_Parts = Tuple[str, str, Optional[str]]
_Callback = Callable[[Any, Optional[BaseException]], None]
_Files = Sequence[Tuple[str, bytes]]

class Task:
    def cancel(self) -> None: ...

class Session:
    id: str
    lost: bool
    closed: bool
    policy_json: str
    def run(
        self, code: str, input_json: Optional[str] = ..., files: _Files = ..., collect: Sequence[str] = ...
    ) -> _Parts: ...
    def submit(
        self,
        callback: _Callback,
        code: str,
        input_json: Optional[str] = ...,
        files: _Files = ...,
        collect: Sequence[str] = ...,
    ) -> Task: ...
    def close(self) -> None: ...

class Engine:
    kind: str
    @staticmethod
    def local(
        venv_dir: str,
        venv_manager: str = ...,
        packages: Sequence[str] = ...,
        pool_size: Optional[int] = ...,
        preload: Sequence[str] = ...,
        sandbox: Optional[str] = ...,
        python: Optional[str] = ...,
        max_sessions: Optional[int] = ...,
        scratch_dir: Optional[str] = ...,
        warmup: Optional[str] = ...,
    ) -> "Engine": ...
    @staticmethod
    def docker(
        image: Optional[str] = ...,
        packages: Sequence[str] = ...,
        name: Optional[str] = ...,
        pool_size: Optional[int] = ...,
        max_runs: Optional[int] = ...,
        ttl_seconds: Optional[int] = ...,
        acquire_timeout_seconds: Optional[int] = ...,
        docker_host: Optional[str] = ...,
        docker_context: Optional[str] = ...,
        ssh_host: Optional[str] = ...,
        ssh_user: Optional[str] = ...,
        ssh_port: Optional[int] = ...,
        ssh_key_path: Optional[str] = ...,
        preload: Sequence[str] = ...,
        max_sessions: Optional[int] = ...,
        runtime: Optional[str] = ...,
        cpus: Optional[float] = ...,
        container_prefix: Optional[str] = ...,
        warmup: Optional[str] = ...,
    ) -> "Engine": ...
    def prepare(self) -> None: ...
    def warm_up(self) -> None: ...
    def shutdown(self) -> None: ...
    def run(
        self,
        code: str,
        input_json: Optional[str] = ...,
        policy_json: Optional[str] = ...,
        policy_file: Optional[str] = ...,
        files: _Files = ...,
        collect: Sequence[str] = ...,
    ) -> _Parts: ...
    def submit(
        self,
        callback: _Callback,
        code: str,
        input_json: Optional[str] = ...,
        policy_json: Optional[str] = ...,
        policy_file: Optional[str] = ...,
        files: _Files = ...,
        collect: Sequence[str] = ...,
    ) -> Task: ...
    def open_session(self, policy_json: Optional[str] = ..., policy_file: Optional[str] = ...) -> Session: ...
    def open_sessions(self) -> int: ...
    def list_containers(self, all_states: bool = ...) -> str: ...
    def list_images(self) -> str: ...
    def stop_container(self, container_id: str, timeout_seconds: int = ...) -> None: ...
    def kill_container(self, container_id: str) -> None: ...
    def cleanup_stale(self) -> str: ...

def default_policy() -> str: ...
def load_policy_file(path: str) -> str: ...
def check_policy(text: str) -> str: ...
def validate_pinned_packages(specs: List[str]) -> List[str]: ...
