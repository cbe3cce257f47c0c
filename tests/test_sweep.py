"""The orchestrator's sweep of unfinished runs: the safety net for lost notices, which leaves
alone the runs that are moving along. On the in-memory store and on fakeredis with the real Lua
(`protocol_redis`), the orchestrator not serving (its inbox unread, as if every notice were lost)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.utils import timestamp_ms

from arqgraph import protocol
from arqgraph.core.pregel import TaskOutcome
from arqgraph.embedded import EmbeddedCluster
from arqgraph.orchestrator.service import SWEEP_BACKOFF, Orchestrator
from arqgraph.storage.queue import JobQueue
from arqgraph.workers.runner import NodeRunner
from tests.graphs.one_node import one_node_graph, submit


async def test_the_sweep_moves_runs_nobody_moved_and_leaves_moving_ones_alone(
    monkeypatch: pytest.MonkeyPatch, protocol_redis: Callable[[], ArqRedis],
):
    redis = protocol_redis()
    orchestrator = Orchestrator(redis, [one_node_graph("swept")], sweep_interval=60)
    await orchestrator.register()
    run_id = await submit(orchestrator.store, "swept")
    poked: list[str] = []
    poke = orchestrator.poke
    monkeypatch.setattr(orchestrator, "poke",
                        lambda r, swept=False: (poked.append(r), poke(r, swept)))

    await orchestrator.sweep()  # its submit notice unread: the sweep starts it
    assert poked == [run_id]
    await asyncio.gather(*orchestrator._busy.values())
    record = await orchestrator.store.load_run(run_id)
    assert record is not None and record.status == "running"
    assert await redis.llen(protocol.ready_key(protocol.DEFAULT_QUEUE)) == 1  # its task

    await orchestrator.sweep()  # just moved by this orchestrator: left alone
    assert poked == [run_id]
    waits = []
    for _ in range(6):  # each sweep that finds it waiting (its task not done) waits twice as long
        moved, wait = orchestrator._moved[run_id]
        waits.append(wait)
        orchestrator._moved[run_id] = (moved - wait, wait)  # that long without a move
        await orchestrator.sweep()
        await asyncio.gather(*orchestrator._busy.values())
    assert waits == [60, 120, 240, 480, 960, 960] and SWEEP_BACKOFF == 16  # then no longer
    assert poked == [run_id] * 7
    orchestrator.poke(run_id)  # a notice: it moves along again, swept an interval after
    await asyncio.gather(*orchestrator._busy.values())
    assert orchestrator._moved[run_id][1] == 60

    await redis.srem(protocol.active_key("swept"), run_id)  # finished (elsewhere): forgotten
    await orchestrator.sweep()
    assert run_id not in orchestrator._moved and len(poked) == 8
    await redis.aclose()


async def test_a_run_that_ends_is_retired_by_its_last_commit_or_else_by_the_sweep(
    protocol_redis: Callable[[], ArqRedis],
):
    redis = protocol_redis()
    orchestrator = Orchestrator(redis, [one_node_graph("swept")], sweep_interval=60, retention=600)
    await orchestrator.register()
    store = orchestrator.store
    run_id = await submit(store, "swept", waiter="w1")
    await orchestrator.advance(run_id)
    record = await store.load_run(run_id)
    assert record is not None and record.saved is not None
    task = record.saved.checkpoint.tasks[0]
    await store.post_outcome("swept", run_id, record.checkpoint_id,
                             TaskOutcome(task.id, task.node, {"log": ["ran"]}))
    await orchestrator.advance(run_id)  # the last commit: done, and retired with it

    async def retired() -> bool:
        return (not await redis.sismember(protocol.active_key("swept"), run_id)
                and 0 < await redis.ttl(protocol.run_key(run_id)) <= 600
                and 0 < await redis.ttl(protocol.thread_key(record.tag)) <= 600
                and await redis.lrange(protocol.ends_key("w1"), 0, -1) == [run_id.encode()])

    assert await store.status(run_id) == "done" and await retired()

    # A run that ended unretired (by an earlier version, say): the sweep retires it.
    await redis.delete(protocol.ends_key("w1"))
    await redis.sadd(protocol.active_key("swept"), run_id)
    for key in (protocol.run_key(run_id), protocol.thread_key(record.tag)):
        await redis.persist(key)
    await orchestrator.sweep()
    await asyncio.gather(*orchestrator._busy.values())
    assert await retired()
    await redis.aclose()


async def test_a_run_whose_queued_work_was_lost_is_driven_again_by_the_sweep(
    protocol_redis: Callable[[], ArqRedis],
):
    """A Redis rolled back (a failover to a replica that lacked the last writes) can keep a
    running run without its step's jobs: any orchestrator's sweep enqueues them again."""
    from arq.constants import job_key_prefix

    redis = protocol_redis()
    orchestrator = Orchestrator(redis, [one_node_graph("lost-work")], sweep_interval=60)
    await orchestrator.register()
    run_id = await submit(orchestrator.store, "lost-work")
    await orchestrator.sweep()
    await asyncio.gather(*orchestrator._busy.values())
    queue, ready = protocol.DEFAULT_QUEUE, protocol.ready_key(protocol.DEFAULT_QUEUE)
    jobs = await redis.zrange(queue, 0, -1)
    assert len(jobs) == 1 and protocol.run_of_job(jobs[0].decode()) == run_id
    await redis.delete(queue, ready, job_key_prefix + jobs[0].decode())  # (the work is gone)

    other = Orchestrator(redis, [one_node_graph("lost-work")], sweep_interval=60)
    await other.sweep()
    await asyncio.gather(*other._busy.values())
    assert await redis.zrange(queue, 0, -1) == jobs and await redis.lrange(ready, 0, -1) == jobs
    assert await redis.exists(job_key_prefix + jobs[0].decode())
    await redis.aclose()


async def test_how_a_job_ends_without_its_outcome_decides_its_re_drive(
    protocol_redis: Callable[[], ArqRedis],
):
    """arq keeps a finished job's result a minute, and an enqueue of the job meanwhile is a
    no-op. A job its worker took for stale used to end so, and hold its run that long: it ends
    without a result now, and the next advance enqueues it again. A fenced job whose hold
    lapsed stays queued, due. And a worker ends or gives back only a job it still holds."""
    redis = protocol_redis()
    orchestrator = Orchestrator(redis, [one_node_graph("redriven")], sweep_interval=60)
    await orchestrator.register()
    run_id = await submit(orchestrator.store, "redriven")
    await orchestrator.advance(run_id)
    record = await orchestrator.store.load_run(run_id)
    assert record is not None and record.saved is not None
    task = record.saved.checkpoint.tasks[0]
    job_id = protocol.job_id(run_id, record.checkpoint_id, task.id)
    queue = protocol.DEFAULT_QUEUE
    mine, other = JobQueue(redis, queue), JobQueue(redis, queue)

    async def queued() -> bool:
        return await redis.zscore(queue, job_id) is not None

    [taken] = await mine.take([job_id], lease=5.0, most=1)
    assert taken.job_id == job_id
    # another worker (its lease ran out, the job was taken again) can neither end nor requeue it
    for end in ("done", "redrive", "fenced"):
        assert not await other.finish(job_id, b"skipped", 60_000, end)  # type: ignore[arg-type]
    await other.requeue(job_id, timestamp_ms(), listed=True)
    assert await redis.exists(protocol.lease_key(job_id), f"arq:job:{job_id}") == 2
    assert await redis.zscore(queue, job_id) > timestamp_ms()  # still held
    # taken for stale by its holder: it ends without arq's result, and is enqueued again
    assert await mine.finish(job_id, b"skipped", 60_000, "redrive")
    assert not await redis.exists(f"arq:job:{job_id}", protocol.lease_key(job_id),
                                   f"arq:result:{job_id}")
    assert not await queued()
    await orchestrator.advance(run_id)  # (as the sweep or the worker's note would)
    assert await queued() and await redis.exists(f"arq:job:{job_id}")
    await orchestrator.advance(run_id)  # queued: no second job
    assert await redis.zcard(queue) == 1
    # fenced, its hold lapsed: it stays queued for the next take
    [taken] = await mine.take([job_id], lease=5.0, most=1)
    await redis.delete(protocol.lease_key(job_id))  # (the lease ran out: due from then)
    await redis.zadd(queue, {job_id: timestamp_ms() - 1}, xx=True)
    assert not await mine.finish(job_id, b"fenced", 60_000, "fenced")
    assert await queued() and await redis.exists(f"arq:job:{job_id}")
    # ended as arq ends a job: its result kept, the enqueue waits for it, as arq's
    [taken] = await mine.take([job_id], lease=5.0, most=1)
    assert await mine.finish(job_id, b"cancelled", 60_000, "done")
    assert await redis.pttl(f"arq:result:{job_id}") > 50_000
    await orchestrator.advance(run_id)
    assert not await queued()
    await redis.aclose()


async def test_a_job_its_worker_took_for_stale_is_enqueued_again_on_the_workers_note(
    monkeypatch: pytest.MonkeyPatch, protocol_redis: Callable[[], ArqRedis],
):
    """A worker that ends a job without its task's outcome tells the run's orchestrator, which
    enqueues the job again at once: the sweep (off here) need not find it."""
    skipped: list[str] = []
    run_job = NodeRunner._run_job

    async def stale_once(self: NodeRunner, ctx: dict[str, Any], **payload: Any) -> str:
        if not skipped:  # (as a worker whose read of the run was stale would)
            skipped.append(ctx["job_id"])
            return "skipped: stale step"
        return await run_job(self, ctx, **payload)

    monkeypatch.setattr(NodeRunner, "_run_job", stale_once)
    async with EmbeddedCluster([one_node_graph("stale")], redis=protocol_redis()) as cluster:
        async def no_sweep() -> bool:
            return True

        monkeypatch.setattr(cluster.orchestrator, "sweep", no_sweep)
        handle = await cluster.client.submit("stale", {"log": []})
        assert await asyncio.wait_for(handle.result(), 10) == {"log": ["ran"]}
        assert len(skipped) == 1
        assert protocol.task_of_job(skipped[0]) is not None
