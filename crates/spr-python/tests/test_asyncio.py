"""run_code_async and async sessions under asyncio: gather, a free loop, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

import spr
from spr import RunnerPolicy, run_code_async


def test_gather_many_runs(engine):
    async def main():
        return await asyncio.gather(
            *(run_code_async("result = n * 3", engine, input_data={"n": n}) for n in range(40))
        )

    results = asyncio.run(main())
    assert [r.result for r in results] == [n * 3 for n in range(40)]
    assert all(r.ok for r in results)


def test_the_loop_stays_responsive_during_a_long_run(engine):
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        r = await run_code_async("import time\ntime.sleep(1)\nresult = 'done'", engine)
        task.cancel()
        return r, ticks

    r, ticks = asyncio.run(main())
    assert r.ok and r.result == "done", r
    assert ticks >= 10, f"the ticker ran only {ticks} times during a 1 s run"


def test_cancelling_a_run_is_prompt_and_the_engine_still_works(engine):
    async def main():
        started = time.monotonic()
        with pytest.raises((asyncio.TimeoutError, asyncio.CancelledError)):
            await asyncio.wait_for(
                run_code_async("import time\ntime.sleep(5)", engine, policy=RunnerPolicy(timeout_seconds=30)),
                timeout=0.3,
            )
        elapsed = time.monotonic() - started
        after = await run_code_async("result = 'alive'", engine)
        return elapsed, after

    elapsed, after = asyncio.run(main())
    assert elapsed < 3, f"cancelling took {elapsed:.1f}s"
    assert after.ok and after.result == "alive"


def test_cancelling_kills_the_run(engine):
    """Cancelled endless runs give their workers back: after as many of them as the pool
    has workers, a new run is served long before their 30 s timeouts."""

    async def main():
        for _ in range(2):
            with pytest.raises((asyncio.TimeoutError, asyncio.CancelledError)):
                await asyncio.wait_for(
                    run_code_async("while True:\n    pass", engine, policy=RunnerPolicy(timeout_seconds=30)),
                    timeout=0.3,
                )
        started = time.monotonic()
        r = await run_code_async("result = 'next'", engine, policy=RunnerPolicy(timeout_seconds=30))
        return r, time.monotonic() - started

    r, elapsed = asyncio.run(main())
    assert r.ok and r.result == "next", r
    assert elapsed < 15, f"the next run waited {elapsed:.1f}s for a worker"


def test_async_errors_are_the_sync_ones(engine, tmp_path):
    async def main():
        with pytest.raises(ValueError, match="timeout_seconds"):
            await run_code_async("1", engine, policy=RunnerPolicy(timeout_seconds=-1))
        with pytest.raises(ValueError, match="Provide either 'policy' or 'policy_file', not both"):
            await run_code_async("1", engine, policy=RunnerPolicy(), policy_file=str(tmp_path / "p.toml"))
        with pytest.raises(TypeError):
            await run_code_async("1", engine, input_data={"s": {1}})
        with pytest.raises(TypeError, match="code must be a str"):
            await run_code_async(b"1", engine)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"\.\."):
            await run_code_async("1", engine, files={"../x": "no"})
        timed = await run_code_async("while True:\n    pass", engine, policy=RunnerPolicy(timeout_seconds=1))
        raised = await run_code_async("raise KeyError('k')", engine)
        return timed, raised

    timed, raised = asyncio.run(main())
    assert timed.timed_out and timed.exit_code == 124
    assert not raised.ok and raised.error == "KeyError: 'k'"


def test_async_session(engine):
    async def main():
        async with engine.session() as s:
            a = await s.run_async("x = 20")
            b = await s.run_async("x + 1")
            c = await s.run_async("result = x * input_data['k']", input_data={"k": 2})
        return s, a, b, c

    s, a, b, c = asyncio.run(main())
    assert a.ok and b.ok and c.ok
    assert b.value == 21
    assert c.result == 40
    assert s.closed
    with pytest.raises(spr.SessionClosedError):
        s.run("x")


def test_async_sessions_in_parallel(engine):
    async def one(k):
        s = engine.session()
        try:
            await s.run_async(f"v = {k}")
            r = await s.run_async("v * 10")
            return r.value
        finally:
            s.close()

    async def main():
        return await asyncio.gather(*(one(k) for k in range(3)))

    assert asyncio.run(main()) == [0, 10, 20]


def test_cancelling_a_session_cell_loses_the_session(engine):
    async def main():
        s = engine.session(policy=RunnerPolicy(timeout_seconds=30))
        try:
            await s.run_async("x = 1")
            with pytest.raises((asyncio.TimeoutError, asyncio.CancelledError)):
                await asyncio.wait_for(s.run_async("import time\ntime.sleep(20)"), timeout=0.3)
            # The cell may be half done: the session is killed rather than reused.
            with pytest.raises(spr.SessionLostError):
                await s.run_async("x")
        finally:
            s.close()
        async with engine.session() as other:
            return await other.run_async("'fine'")

    assert asyncio.run(main()).value == "fine"


def test_async_session_errors(engine):
    async def main():
        s = engine.session()
        s.close()
        with pytest.raises(spr.SessionClosedError):
            await s.run_async("1")

    asyncio.run(main())


def test_sync_and_async_callers_share_one_engine(engine):
    import threading

    sync_results = []

    def sync_side():
        for i in range(5):
            sync_results.append(spr.run_code("result = -i", engine, input_data={"i": i}).result)

    async def main():
        return await asyncio.gather(
            *(run_code_async("result = i", engine, input_data={"i": i}) for i in range(10))
        )

    thread = threading.Thread(target=sync_side)
    thread.start()
    results = asyncio.run(main())
    thread.join()
    assert [r.result for r in results] == list(range(10))
    assert sync_results == [0, -1, -2, -3, -4]
