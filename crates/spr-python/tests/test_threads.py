"""One engine shared by many threads: correct answers, no cross-talk, the GIL released, Ctrl-C."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from spr import RunnerPolicy, run_code

from conftest import interrupt_during

THREADS = 12
RUNS_PER_THREAD = 8


def test_many_threads_share_one_engine_without_cross_talk(engine):
    code = "import time\nprint(tag)\nresult = {'tag': tag, 'square': n * n}"

    def worker(t):
        out = []
        for i in range(RUNS_PER_THREAD):
            tag = f"thread-{t}-run-{i}"
            n = t * 1000 + i
            r = run_code(code, engine, input_data={"tag": tag, "n": n})
            out.append((tag, n, r))
        return out

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))

    seen = 0
    for per_thread in results:
        for tag, n, r in per_thread:
            assert r.ok, r
            assert r.result == {"tag": tag, "square": n * n}
            assert r.stdout == tag + "\n"
            seen += 1
    assert seen == THREADS * RUNS_PER_THREAD


def test_gil_is_released_during_a_run(engine):
    ticks = 0
    stop = threading.Event()

    def counter():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    thread = threading.Thread(target=counter)
    thread.start()
    try:
        before = ticks
        r = run_code("import time\ntime.sleep(1)\nresult = 'slept'", engine)
        during = ticks - before
    finally:
        stop.set()
        thread.join()
    assert r.ok and r.result == "slept", r
    # A held GIL would leave the counter at (nearly) zero for the whole second.
    assert during >= 20, f"the counter thread ticked only {during} times during a 1 s run"


def test_errors_in_threads_do_not_leak_into_other_threads(engine):
    def worker(i):
        if i % 2:
            return i, run_code(f"raise ValueError('bad {i}')", engine)
        return i, run_code(f"result = {i}", engine)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for i, r in pool.map(worker, range(16)):
            if i % 2:
                assert not r.ok and r.error == f"ValueError: bad {i}"
            else:
                assert r.ok and r.result == i


def test_ctrl_c_interrupts_a_blocking_run_and_the_engine_still_works(engine):
    started = time.monotonic()
    interrupt_during(
        lambda: run_code("import time\ntime.sleep(20)", engine, policy=RunnerPolicy(timeout_seconds=30)),
        after=0.5,
    )
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"KeyboardInterrupt took {elapsed:.1f}s"
    r = run_code("result = 'alive'", engine)
    assert r.ok and r.result == "alive"


def test_ctrl_c_kills_the_run(engine):
    """Ctrl-C kills the run, not just the wait for it: after two interrupted endless runs
    (as many as the pool has workers), a new run still gets a worker long before those
    runs' own 30 s timeouts would have freed one."""
    for _ in range(2):
        interrupt_during(
            lambda: run_code("while True:\n    pass", engine, policy=RunnerPolicy(timeout_seconds=30))
        )
    started = time.monotonic()
    r = run_code("result = 'next'", engine, policy=RunnerPolicy(timeout_seconds=30))
    elapsed = time.monotonic() - started
    assert r.ok and r.result == "next", r
    assert elapsed < 15, f"the next run waited {elapsed:.1f}s for a worker"
