"""Bridges spr's runtime to asyncio: a native call's callback resolves an asyncio future."""

from __future__ import annotations

import asyncio
from typing import Any, Callable


async def await_native(submit: Callable[[Callable[[Any, Any], None]], Any]) -> Any:
    """Start a native call with ``submit(callback)`` and wait for it without blocking the
    loop. Cancelling the awaiting task cancels the call (and kills its run)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(value: Any, error: Any) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def callback(value: Any, error: Any) -> None:
        # Called on one of spr's runtime threads: hand the outcome to the loop's thread.
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:
            pass  # the loop was closed meanwhile; nobody awaits this call any more

    task = submit(callback)
    try:
        return await future
    except asyncio.CancelledError:
        task.cancel()
        raise
