"""Plain arq, the reference for "the same work as arq jobs": the worker process and the producer.

The worker is arq's own `Worker` (msgpack job format, arq's polling with `--poll-delay`, INFO
logging as arq's CLI does). Graph structure is expressed the arq way: a job enqueues the jobs
that follow it, and fan-ins count finished jobs with INCR; the last one pushes a token that the
producer waits for with BLPOP (no result polling by the producer).

    python -m bench.plain_arq --redis URL --concurrency N --poll-delay S --queue Q
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from typing import Any

from arq.connections import ArqRedis, create_pool
from arq.worker import Worker

from arqgraph.storage.connection import job_deserializer, job_serializer, redis_settings
from bench.graphs import Item, burn

Ctx = dict[str, Any]


def _queue(ctx: Ctx) -> str:
    return str(ctx["queue"])


async def _enqueue(ctx: Ctx, function: str, **kwargs: Any) -> None:
    redis: ArqRedis = ctx["redis"]
    await redis.enqueue_job(function, _queue_name=_queue(ctx), **kwargs)


async def _count_done(ctx: Ctx, key: str, n: int) -> int:
    redis: ArqRedis = ctx["redis"]
    count = int(await redis.incr(f"{key}:count"))
    if count == n:
        await redis.lpush(f"{key}:done", b"1")
    return count


async def chain(ctx: Ctx, key: str, i: int, n: int) -> None:
    """One link of a chain of n jobs: stamp the clock, enqueue the next link."""
    await ctx["redis"].rpush(f"{key}:ts", repr(time.time()))
    if i + 1 < n:
        await _enqueue(ctx, "chain", key=key, i=i + 1, n=n)
    else:
        await ctx["redis"].lpush(f"{key}:done", b"1")


async def leaf(ctx: Ctx, key: str, n: int, sleep: float, cpu_ms: float) -> None:
    """One of n fanned-out jobs: await `sleep`, or burn `cpu_ms` of CPU in a thread."""
    if sleep:
        await asyncio.sleep(sleep)
    if cpu_ms:
        item: Item = {"i": 0, "sleep": 0.0, "cpu_ms": cpu_ms}
        await asyncio.get_running_loop().run_in_executor(None, burn, item)
    await _count_done(ctx, key, n)


async def three(ctx: Ctx, key: str, stage: int, n: int) -> None:
    """A 3-job run (a -> b -> c); the last stage counts the run done."""
    if stage < 2:
        await _enqueue(ctx, "three", key=key, stage=stage + 1, n=n)
    else:
        await _count_done(ctx, key, n)


SCREENING = {"parse": 2.0, "background": 3.0, "references": 2.0, "decide": 0.0}


async def screen(ctx: Ctx, key: str, stage: str) -> None:
    """The screening example as jobs: parse, then background and references, then decide."""
    await asyncio.sleep(SCREENING[stage])
    if stage == "parse":
        await _enqueue(ctx, "screen", key=key, stage="background")
        await _enqueue(ctx, "screen", key=key, stage="references")
    elif stage in ("background", "references"):
        if await _count_done(ctx, f"{key}:join", 2) == 2:
            await _enqueue(ctx, "screen", key=key, stage="decide")
    else:
        await ctx["redis"].lpush(f"{key}:done", b"1")


FUNCTIONS = [chain, leaf, three, screen]


# -- the producer side ------------------------------------------------------------------------


class ArqProducer:
    """Enqueues the scenarios' jobs and waits for their done token."""

    def __init__(self, redis: ArqRedis, queue: str) -> None:
        self.redis = redis
        self.queue = queue

    @classmethod
    async def connect(cls, url: str, queue: str) -> ArqProducer:
        pool = await create_pool(redis_settings(url), job_serializer=job_serializer,
                                 job_deserializer=job_deserializer)
        return cls(pool, queue)

    async def close(self) -> None:
        await self.redis.aclose()

    def new_key(self) -> str:
        return f"bench:arq:{uuid.uuid4().hex}"

    async def enqueue(self, function: str, **kwargs: Any) -> None:
        await self.redis.enqueue_job(function, _queue_name=self.queue, **kwargs)

    async def wait_done(self, key: str, timeout: float = 600) -> None:
        if await self.redis.blpop([f"{key}:done"], timeout=timeout) is None:  # type: ignore[arg-type,misc]
            raise TimeoutError(f"plain arq: {key} did not finish in {timeout}s")

    async def chain(self, n: int) -> list[float]:
        key = self.new_key()
        await self.enqueue("chain", key=key, i=0, n=n)
        await self.wait_done(key)
        return [float(x) for x in await self.redis.lrange(f"{key}:ts", 0, -1)]

    async def fanout(self, n: int, *, sleep: float = 0.0, cpu_ms: float = 0.0) -> None:
        key = self.new_key()
        await asyncio.gather(*[self.enqueue("leaf", key=key, n=n, sleep=sleep, cpu_ms=cpu_ms)
                               for _ in range(n)])
        await self.wait_done(key)

    async def runs_of_three(self, n: int) -> None:
        key = self.new_key()
        await asyncio.gather(*[self.enqueue("three", key=key, stage=0, n=n) for _ in range(n)])
        await self.wait_done(key)

    async def screening(self) -> None:
        key = self.new_key()
        await self.enqueue("screen", key=key, stage="parse")
        await self.wait_done(key)


# -- the worker process -----------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    pool = await create_pool(redis_settings(args.redis), job_serializer=job_serializer,
                             job_deserializer=job_deserializer)
    worker = Worker(
        functions=FUNCTIONS,  # type: ignore[arg-type]
        redis_pool=pool, queue_name=args.queue, max_jobs=args.concurrency,
        poll_delay=args.poll_delay, job_serializer=job_serializer,
        job_deserializer=job_deserializer, ctx={"queue": args.queue}, keep_result=60,
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.plain_arq")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--queue", default="bench:arq")
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--poll-delay", type=float, default=0.002)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
