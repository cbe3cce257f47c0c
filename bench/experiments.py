"""Candidate changes measured in isolation, without touching product code:

    python -m bench.experiments [--tasks N]

1. hop:     the floor of one wake-up hop (LPUSH on one connection, BRPOP on another) against
            arq's pick-up of a job by a polling worker (enqueue_job + WATCH/MULTI claim).
2. enqueue: N tasks enqueued as arqgraph does today (arq's enqueue_job, one after another: WATCH,
            EXISTS, MULTI/PSETEX/ZADD/EXEC) against one pipelined batch of the same writes, and
            against one Lua call.
3. decode:  what a worker pays to read a run whose checkpoint lists N Send tasks (it loads and
            decodes the whole checkpoint for each task it runs), against reading one task.

Starts its own redis-server (as the benchmark does) and prints one line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core import codec
from arqgraph.core.pregel import Checkpoint, Task
from arqgraph.protocol import SavedCheckpoint
from arqgraph.storage.connection import connect
from bench.cluster import Cluster
from bench.model import median, percentile

ENQUEUE_LUA = """
-- KEYS[1] queue; ARGV: score, then (job id, job body) pairs. Skips jobs that exist.
local n = 0
for i = 2, #ARGV, 2 do
  local key = 'arq:job:' .. ARGV[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('PSETEX', key, 86400000, ARGV[i + 1])
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    n = n + 1
  end
end
return n
"""


async def hop(redis: ArqRedis, url: str, rounds: int = 2000) -> dict[str, float]:
    """Round trip of a token between two connections through two lists (two hops), halved."""
    other = await connect(url, what="bench")
    key_a, key_b = f"bench:hop:{uuid.uuid4().hex}", f"bench:hop:{uuid.uuid4().hex}"

    async def echo() -> None:
        for _ in range(rounds):
            await other.brpop([key_a], timeout=5)  # type: ignore[arg-type,misc]
            await other.lpush(key_b, b"1")  # type: ignore[misc]

    task = asyncio.create_task(echo())
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await redis.lpush(key_a, b"1")  # type: ignore[misc]
        await redis.brpop([key_b], timeout=5)  # type: ignore[arg-type,misc]
        times.append(1e6 * (time.perf_counter() - started) / 2)
    await task
    await other.aclose()
    return {"p50_us": median(times), "p99_us": percentile(times, 99)}


def _job(i: int) -> dict[str, Any]:
    return {"run_id": f"{'a' * 20}.{uuid.uuid4().hex}", "checkpoint_id": str(uuid.uuid4()),
            "step": 1, "task_id": f"{i}:work", "graph": "bench_fanout", "fingerprint": "f" * 16}


async def enqueue(redis: ArqRedis, n: int) -> dict[str, float]:
    """Seconds to enqueue n jobs three ways (each on an empty queue)."""
    out: dict[str, float] = {}
    jobs = [_job(i) for i in range(n)]
    queue = f"bench:q:{uuid.uuid4().hex}"
    started = time.perf_counter()
    for i, job in enumerate(jobs):  # as arqgraph enqueued before its batch script (JobQueue.enqueue)
        await redis.enqueue_job(protocol.TASK_FUNCTION, _job_id=f"{queue}:a:{i}", _queue_name=queue,
                                **job)
    out["arq enqueue_job, one by one"] = time.perf_counter() - started

    def body(job: dict[str, Any]) -> bytes:
        return codec.packb({"t": 1, "f": protocol.TASK_FUNCTION, "a": [], "k": job, "et": 0})

    started = time.perf_counter()
    async with redis.pipeline(transaction=True) as pipe:  # one round trip, no WATCH
        for i, job in enumerate(jobs):
            pipe.psetex(f"arq:job:{queue}:b:{i}", 86_400_000, body(job))
            pipe.zadd(f"{queue}:b", {f"{queue}:b:{i}": time.time() * 1000})
        await pipe.execute()
    out["one MULTI pipeline (no de-duplication)"] = time.perf_counter() - started
    script = redis.register_script(ENQUEUE_LUA)
    args: list[Any] = [int(time.time() * 1000)]
    started = time.perf_counter()
    for i, job in enumerate(jobs):
        args += [f"{queue}:c:{i}", body(job)]
    await script(keys=[f"{queue}:c"], args=args)
    out["one Lua call (de-duplicating)"] = time.perf_counter() - started
    return out


def decode(n: int) -> dict[str, float]:
    """Microseconds to decode a saved checkpoint with n Send tasks, and its size."""
    tasks = tuple(Task(f"{i:06d}:work", "work", i, {"i": i, "sleep": 0.0, "cpu_ms": 0.0})
                  for i in range(n))
    cp = Checkpoint(step=2, values={"n": n, "total": 0}, tasks=tasks)
    saved = SavedCheckpoint(id=str(uuid.uuid4()), parent=None, source="loop", run_id="a.b",
                            created_at=datetime.now(UTC).isoformat(), checkpoint=cp)
    blob = protocol.encode_saved(saved)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        protocol.decode_saved(blob)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(5):
        protocol.encode_saved(saved)
    encode_s = (time.perf_counter() - started) / 5
    return {"bytes": len(blob), "decode_ms": 1000 * median(times), "encode_ms": 1000 * encode_s}


async def run(n: int) -> list[str]:
    """Every experiment, one line per measurement (markdown list items)."""
    lines = []
    cluster = Cluster(workers=0)
    cluster.start_redis()
    try:
        redis = await connect(cluster.url, what="bench")
        h = await hop(redis, cluster.url)
        lines.append(f"- hop: one wake-up through a list (LPUSH, BRPOP on another connection): "
                     f"p50 {h['p50_us']:.0f} us, p99 {h['p99_us']:.0f} us")
        for way, seconds in (await enqueue(redis, n)).items():
            lines.append(f"- enqueue {n:,} tasks, {way}: {seconds:.3f} s = "
                         f"{1e6 * seconds / n:.0f} us per task")
        await redis.aclose()
    finally:
        cluster.stop()
    for size in (1, 100, 1_000, 10_000):
        d = decode(size)
        lines.append(f"- decode a saved checkpoint of {size:,} Send tasks ({d['bytes']:,} bytes): "
                     f"{d['decode_ms']:.2f} ms (encode {d['encode_ms']:.2f} ms); a worker does it "
                     "once per step it runs tasks of (it keeps what it decoded)")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.experiments")
    parser.add_argument("--tasks", type=int, default=10_000, help="jobs to enqueue (10,000)")
    args = parser.parse_args(argv)
    print("\n".join(asyncio.run(run(args.tasks))))


if __name__ == "__main__":
    main()
