"""`Session`: a sandboxed interpreter whose state persists from one cell to the next."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional

from ._aio import await_native
from ._attach import call_args, send
from ._policy import RunnerPolicy
from ._result import RunnerResult


class Session:
    """One sandboxed process under a policy fixed for its life. Globals, imports and
    files persist between cells; a cell that hits its timeout is interrupted and the
    session goes on, unless it did not stop within a short grace: then the result says
    ``session_lost`` and later cells raise :class:`spr.SessionLostError`.

    Use it as a context manager, or call :meth:`close`; dropping it closes it too.
    """

    __slots__ = ("_native", "_engine", "__weakref__")

    def __init__(self) -> None:
        raise TypeError("open a session with engine.session(policy=...)")

    @classmethod
    def _open(cls, engine, policy: Optional[RunnerPolicy], policy_file: Any) -> "Session":
        from ._run import _policy_args

        policy_json, path = _policy_args(policy, policy_file)
        self = object.__new__(cls)
        self._engine = engine
        self._native = engine._native.open_session(policy_json=policy_json, policy_file=path)
        return self

    def run(
        self,
        code: str,
        input_data: Optional[Mapping[str, Any]] = None,
        *,
        files: Optional[Mapping[str, Any]] = None,
        collect: Optional[Iterable[str]] = None,
    ) -> RunnerResult:
        """Run a cell. ``result.value`` is its last expression's value."""
        kwargs = call_args(code, input_data, files, collect)
        return RunnerResult._from_parts(send(self._native.run, code=code, **kwargs))

    async def run_async(
        self,
        code: str,
        input_data: Optional[Mapping[str, Any]] = None,
        *,
        files: Optional[Mapping[str, Any]] = None,
        collect: Optional[Iterable[str]] = None,
    ) -> RunnerResult:
        """:meth:`run` for asyncio."""
        kwargs = call_args(code, input_data, files, collect)
        parts = await await_native(lambda cb: send(self._native.submit, cb, code=code, **kwargs))
        return RunnerResult._from_parts(parts)

    @property
    def id(self) -> str:
        """The name the session's errors give it."""
        return self._native.id

    @property
    def lost(self) -> bool:
        return self._native.lost

    @property
    def closed(self) -> bool:
        return self._native.closed

    @property
    def policy(self) -> RunnerPolicy:
        data = json.loads(self._native.policy_json)
        return RunnerPolicy(**{k: v for k, v in data.items() if k != "config_path"})

    def close(self) -> None:
        """End the session and its process. Closing twice is harmless."""
        self._native.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, self.close)
