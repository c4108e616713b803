"""Warm `run_code` latency from Python, for `cargo xtask bench --python`.

Prints one JSON object: the interpreter's version and the samples (ms) of sequential
sync runs, sequential asyncio runs, and the throughput of threads sharing one engine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time

import spr

CODE = "result = 2 + 2"


def sequential(engine, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = spr.run_code(CODE, engine)
        samples.append((time.perf_counter() - start) * 1000)
        if not result.ok or result.result != 4:
            raise SystemExit(f"bench run failed: {result}")
    return samples


async def sequential_async(engine, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = await spr.run_code_async(CODE, engine)
        samples.append((time.perf_counter() - start) * 1000)
        if not result.ok:
            raise SystemExit(f"bench run failed: {result}")
    return samples


def threads(engine, count, seconds):
    done = [0] * count
    stop = time.perf_counter() + seconds

    def work(i):
        while time.perf_counter() < stop:
            if spr.run_code(CODE, engine).ok:
                done[i] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done), time.perf_counter() - start


def main():
    venv, runs, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    engine = spr.LocalEngine(venv_dir=venv)
    engine.warm_up()
    sequential(engine, 20)
    sync = sequential(engine, runs)
    aio = asyncio.run(sequential_async(engine, max(50, runs // 4)))
    count = 4
    completed, elapsed = threads(engine, count, seconds)
    version = spr.run_code("import sys\nresult = sys.version.split()[0]", engine).result
    print(
        json.dumps(
            {
                "host_python": sys.version.split()[0],
                "engine_python": version,
                "sync": sync,
                "async": aio,
                "threads": count,
                "thread_runs": completed,
                "thread_seconds": elapsed,
            }
        )
    )
    engine.shutdown()


if __name__ == "__main__":
    main()
