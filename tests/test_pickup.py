"""How workers take jobs: the ready list, the take script, and the sweep that backs them up.

Fast tests, each on the in-memory store and on fakeredis running the real Lua (`protocol_redis`;
the same scripts run on the real redis-server in every cluster test)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from arq.utils import timestamp_ms

from arqgraph import protocol
from arqgraph.embedded import EmbeddedCluster
from arqgraph.errors import CorruptDataError
from arqgraph.graph import END, START, StateGraph
from arqgraph.graph.compiled import CompiledStateGraph
from arqgraph.orchestrator.service import Orchestrator
from arqgraph.storage.queue import JobEnd, JobQueue, Sweep, TakenJob
from arqgraph.workers import worker as worker_module
from arqgraph.workers.runner import NodeRunner
from arqgraph.workers.worker import _require_redis_7, build_worker
from tests.graphs.one_node import LogState, one_node_graph, submit

QUEUE = protocol.DEFAULT_QUEUE


async def enqueue(redis, job_id: str, defer_ms: int = 0) -> None:
    """A plain arq job (not listed as ready), due now or `defer_ms` from now."""
    await redis.enqueue_job(protocol.TASK_FUNCTION, _job_id=job_id, _queue_name=QUEUE,
                            _defer_by=defer_ms / 1000 if defer_ms else None)


async def test_the_take_script_takes_due_queued_jobs_not_running_elsewhere(
    protocol_redis: Callable[[], ArqRedis],
):
    redis = protocol_redis()
    jobs = JobQueue(redis, QUEUE)
    for name in ("a", "b", "c", "running"):
        await enqueue(redis, name)
    await enqueue(redis, "later", defer_ms=60_000)
    await redis.set(protocol.lease_key("running"), b"1")

    ids = ["nope", "running", "later", "a", "a", "b", "c"]
    scores = dict(await redis.zrange(QUEUE, 0, -1, withscores=True))
    before = timestamp_ms()
    taken = await jobs.take(ids, lease=5.0, most=2)

    assert [job.job_id for job in taken] == ["a", "b"]  # in order, at most 2, each once
    assert all(job.score == int(scores[job.job_id.encode()]) for job in taken)  # as queued
    for job in taken:  # held: not due until its lease ends (the sweep reads due jobs only)
        assert before + 5000 <= await redis.zscore(QUEUE, job.job_id) <= timestamp_ms() + 5000
    # arq's start of each (its job read, its try counted) is done by the script too
    for job in taken:
        assert job.job == await redis.get(f"arq:job:{job.job_id}") and job.tries == 1
    assert await redis.get("arq:retry:a") == b"1" and 0 < await redis.ttl("arq:retry:a")
    for job in ("a", "b"):  # held for the lease, like arq's in-progress key
        assert 0 < await redis.pttl(protocol.lease_key(job)) <= 5000
    assert not await redis.exists(protocol.lease_key("c"))
    [c] = await jobs.take(["a", "c"], lease=5.0, most=10)
    assert (c.job_id, c.score, c.tries) == ("c", int(scores[b"c"]), 1)
    await redis.aclose()


async def test_the_sweep_reads_due_jobs_no_worker_holds_and_few_while_jobs_are_listed(
    protocol_redis: Callable[[], ArqRedis],
):
    redis = protocol_redis()
    jobs = JobQueue(redis, QUEUE)
    for name in ("held", "a", "b", "c", "d"):
        await enqueue(redis, name)
    await enqueue(redis, "later", defer_ms=60_000)
    for i, name in enumerate(("held", "a", "b", "c", "d")):  # due, in this order (not by name)
        await redis.zadd(QUEUE, {name: timestamp_ms() - 10_000 + i}, xx=True)
    await redis.set(protocol.lease_key("held"), b"1")

    later = int(await redis.zscore(QUEUE, "later"))
    # the held job and the one not due are left out; the oldest first, twice as many as may be
    # taken (for workers sweeping at once)
    assert await jobs.sweep(read=100, most=2, while_listed=1) == Sweep(["a", "b", "c", "d"], 2, later)
    assert await jobs.sweep(read=100, most=1, while_listed=1) == Sweep(["a", "b"], 1, later)
    assert await jobs.sweep(read=3, most=10, while_listed=1) == Sweep(["a", "b"], 10, later)
    # while ids are listed as ready, the workers' pops take them: the sweep takes fewer
    await jobs.ready_again(["c", "d"])
    assert await jobs.sweep(read=100, most=10, while_listed=1) == Sweep(["a", "b"], 1, later)
    assert await jobs.sweep(read=100, most=0, while_listed=1) == Sweep([], 0, later)
    # the deferred job, come due, is the oldest; none is deferred any more: no next one
    await redis.zadd(QUEUE, {"later": timestamp_ms() - 20_000}, xx=True)
    assert (await jobs.sweep(read=100, most=9, while_listed=9)).next_due is None
    assert (await jobs.sweep(read=100, most=9, while_listed=9)).job_ids[0] == "later"
    # and the worker takes what the sweep says: two of its four candidates, not more
    taken = await jobs.take(["later", "a", "b", "c"], lease=5.0, most=2)
    assert [job.job_id for job in taken] == ["later", "a"]
    # an empty queue; one whose only job is deferred
    await redis.delete(QUEUE)
    assert await jobs.sweep(read=100, most=9, while_listed=9) == Sweep([], 0, None)
    await enqueue(redis, "deferred", defer_ms=60_000)
    deferred = int(await redis.zscore(QUEUE, "deferred"))
    assert await jobs.sweep(read=100, most=9, while_listed=9) == Sweep([], 0, deferred)
    await redis.aclose()


async def test_a_queued_job_with_no_ready_entry_is_found_by_the_sweep(
    monkeypatch: pytest.MonkeyPatch, protocol_redis: Callable[[], ArqRedis],
):
    """A job enqueued by plain arq (or whose entry a dead worker popped) still runs: the sweep
    of an idle queue, with the idle heartbeat (shortened here), finds it."""
    monkeypatch.setattr(worker_module, "IDLE_SWEEP", 0.2)
    async with EmbeddedCluster([one_node_graph("pickup")], redis=protocol_redis()) as cluster:
        job_id = "not-listed"
        await enqueue(cluster.redis, job_id)  # its payload is not a task: rejected, but taken
        assert not await cluster.redis.llen(protocol.ready_key(QUEUE))
        job = Job(job_id, cluster.redis, _queue_name=QUEUE, _deserializer=cluster.redis.job_deserializer)
        assert await asyncio.wait_for(job.result(poll_delay=0.01), 10) == "rejected: bad payload"
        # and the graph's own jobs, listed as ready, run as ever
        assert await (await cluster.client.submit("pickup", {})).result() == {"log": ["ran"]}


async def test_a_deferred_job_is_not_started_before_it_is_due_even_if_listed(
    protocol_redis: Callable[[], ArqRedis],
):
    async with EmbeddedCluster([one_node_graph("pickup")], redis=protocol_redis()) as cluster:
        await enqueue(cluster.redis, "deferred", defer_ms=60_000)
        await cluster.redis.rpush(protocol.ready_key(QUEUE), "deferred")
        # The worker has popped the entry once the list is empty; then the graph runs too.
        assert await (await cluster.client.submit("pickup", {})).result() == {"log": ["ran"]}
        assert not await cluster.redis.llen(protocol.ready_key(QUEUE))
        job = Job("deferred", cluster.redis, _queue_name=QUEUE)
        assert await job.status() == JobStatus.deferred
        assert not await cluster.redis.exists(protocol.lease_key("deferred"))


async def test_a_stopping_worker_gives_back_the_ids_it_popped(
    monkeypatch: pytest.MonkeyPatch, protocol_redis: Callable[[], ArqRedis],
):
    redis = protocol_redis()
    worker = build_worker(redis, [one_node_graph("pickup")], handle_signals=False, poll_delay=0.05)
    for name in ("x", "y", "z"):
        await enqueue(redis, name)
    await redis.rpush(protocol.ready_key(QUEUE), "x", "y", "z")
    pop = worker.runner.jobs.pop_ready

    async def pop_then_stop(most: int, timeout: float) -> list[str]:
        ids = await pop(most, timeout)
        worker.stopping = True  # a SIGTERM while the pop was on its way back
        return ids

    async def no_sweep(read: int, most: int, while_listed: int) -> Sweep:
        return Sweep([], 0, None)  # (the sweep would take them straight from the queue)

    monkeypatch.setattr(worker.runner.jobs, "pop_ready", pop_then_stop)
    monkeypatch.setattr(worker.runner.jobs, "sweep", no_sweep)
    main = asyncio.create_task(worker.main())
    await asyncio.wait_for(main, 10)

    ready = await redis.lrange(protocol.ready_key(QUEUE), 0, -1)
    assert ready == [b"x", b"y", b"z"]  # back, in order, for another worker
    assert not worker.tasks
    for name in ("x", "y", "z"):
        assert not await redis.exists(protocol.lease_key(name))
    worker.threads_shutdown()
    await redis.aclose()


async def test_a_job_handed_back_is_listed_as_ready_again(protocol_redis: Callable[[], ArqRedis]):
    redis = protocol_redis()
    worker = build_worker(redis, [one_node_graph("pickup")], handle_signals=False)
    await enqueue(redis, "h")
    [(job_id, score, _, _, _)] = await worker.runner.jobs.take(["h"], 5.0, 1)
    worker.scores[job_id] = score
    # arq's end of a cancelled job (finish=False, no new score): back in the queue, now
    await worker.finish_job(job_id, False, None, None, False, None, None)
    assert await redis.lrange(protocol.ready_key(QUEUE), 0, -1) == [b"h"]
    assert not await redis.exists(protocol.lease_key("h"))
    # a retry deferred by 50 ms is listed when due, not before
    await redis.delete(protocol.ready_key(QUEUE))
    [(job_id, score, _, _, _)] = await worker.runner.jobs.take(["h"], 5.0, 1)
    worker.scores[job_id] = score
    incr = 50 + (timestamp_ms() - score)
    await worker.finish_job(job_id, False, None, None, False, incr, None)
    assert not await redis.llen(protocol.ready_key(QUEUE))
    assert worker.later
    await asyncio.wait_for(asyncio.gather(*worker.later), 5)
    assert await redis.lrange(protocol.ready_key(QUEUE), 0, -1) == [b"h"]
    assert await worker.runner.jobs.take(["h"], 5.0, 1)  # due by then
    worker.threads_shutdown()
    await redis.aclose()


async def test_a_worker_on_redis_older_than_7_says_so():
    class OldRedis:
        async def info(self, section: str) -> dict[str, str]:
            return {"redis_version": "6.2.14"}

    with pytest.raises(RuntimeError, match=r"Redis 7\.0 or newer .* is Redis 6\.2\.14"):
        await _require_redis_7(OldRedis())  # type: ignore[arg-type]


async def test_backoff_doubles_up_to_its_most_resets_and_stops_early():
    from arqgraph.storage.connection import Backoff

    backoff = Backoff(0.001, 0.004)
    seen = []
    for _ in range(4):
        seen.append(backoff.delay)
        await backoff.wait()
    assert seen == [0.001, 0.002, 0.004, 0.004]
    backoff.reset()
    assert backoff.delay == 0.001
    long = Backoff(60.0, 60.0)
    await asyncio.wait_for(long.wait(lambda: True), 5)  # a stop cuts the wait short


async def test_a_taken_job_whose_arq_job_expired_fails_as_arq_fails_it(
    protocol_redis: Callable[[], ArqRedis],
):
    """The take script opens jobs for arq's run_job; one whose job key is gone (expired) still
    ends as arq ends it: a failed result, and out of the queue."""
    async with EmbeddedCluster([one_node_graph("pickup")], redis=protocol_redis()) as cluster:
        await enqueue(cluster.redis, "gone")
        await cluster.redis.delete("arq:job:gone")
        await cluster.redis.rpush(protocol.ready_key(QUEUE), "gone")
        job = Job("gone", cluster.redis, _queue_name=QUEUE, _deserializer=cluster.redis.job_deserializer)
        info = None
        for _ in range(500):  # until the worker has ended it
            info = await job.result_info()
            if info is not None:
                break
            await asyncio.sleep(0.01)
        assert info is not None and not info.success and "job expired" in str(info.result)
        assert await cluster.redis.zscore(QUEUE, "gone") is None


async def test_the_post_of_a_task_outcome_ends_its_job_as_arq_would(
    monkeypatch: pytest.MonkeyPatch, protocol_redis: Callable[[], ArqRedis],
):
    """The outcome recorded and arq's end of the job in one script: the job leaves the queue,
    with no arq result (nobody reads it: the outcome is in the step's writes), and arq's own
    end of it is not sent. A job that posts nothing (here a duplicate of a finished run's job)
    is ended by arq's path, as before, with its result."""
    ended_by_arq: list[str] = []
    ran: list[tuple[str, dict[str, Any]]] = []
    finish, run_job = JobQueue.finish, NodeRunner.run_job

    async def arq_end(self: JobQueue, job_id: str, result: bytes, keep_ms: int,
                      end: JobEnd = "done") -> bool:
        ended_by_arq.append(job_id)
        return await finish(self, job_id, result, keep_ms, end)

    async def seen_run(self: NodeRunner, ctx: dict[str, Any], **payload: Any) -> str:
        ran.append((ctx["job_id"], payload))
        return await run_job(self, ctx, **payload)

    monkeypatch.setattr(JobQueue, "finish", arq_end)
    monkeypatch.setattr(NodeRunner, "run_job", seen_run)
    async with EmbeddedCluster([one_node_graph("ends")], redis=protocol_redis()) as cluster:
        redis = cluster.redis
        handle = await cluster.client.submit("ends", {})
        assert await handle.result() == {"log": ["ran"]}
        [(job_id, payload)] = ran
        assert protocol.task_of_job(job_id) == (handle.run_id, payload["checkpoint_id"], "0:node")
        job = Job(job_id, redis, _queue_name=QUEUE, _deserializer=redis.job_deserializer)
        assert await job.status() == JobStatus.not_found
        assert await redis.keys("arq:result:*") == []
        assert await redis.zscore(QUEUE, job_id) is None
        for key in (protocol.lease_key(job_id), f"arq:job:{job_id}", f"arq:retry:{job_id}"):
            assert not await redis.exists(key)
        assert ended_by_arq == []
        assert not cluster.worker.runner.ended

        # the same job again: it is skipped, so arq ends the job, with arq's result
        await redis.enqueue_job(protocol.TASK_FUNCTION, _job_id=job_id, _queue_name=QUEUE,
                                **payload)
        await redis.rpush(protocol.ready_key(QUEUE), job_id)
        for _ in range(500):  # until the worker has ended it
            if await job.status() == JobStatus.complete:
                break
            await asyncio.sleep(0.01)
        info = await job.result_info()
        assert info is not None and info.result == "skipped: run is not running"
        assert (info.function, info.kwargs["task_id"]) == (protocol.TASK_FUNCTION, "0:node")
        assert 0 < await redis.pttl(f"arq:result:{job_id}") <= 60_000
        assert ended_by_arq == [job_id]


def parallel_graph(name: str, width: int = 3, limit: int | None = None) -> CompiledStateGraph:
    """START -> p0..p{width-1} -> END; with a concurrency limit on each node if `limit`."""
    builder = StateGraph(LogState)
    for i in range(width):
        builder.add_node(f"p{i}", lambda state: {"log": ["p"]}, concurrency=limit)
        builder.add_edge(START, f"p{i}")
        builder.add_edge(f"p{i}", END)
    return builder.compile(name=name)


async def first_step(compiled: CompiledStateGraph, redis: ArqRedis) -> tuple[NodeRunner, str, list[str]]:
    """A run of `compiled` on its first step over `redis`, its jobs ready (no worker has taken
    them), and a worker's runner on the same Redis: the run id and the ready job ids."""
    orchestrator = Orchestrator(redis, [compiled])
    await orchestrator.register()
    run_id = await submit(orchestrator.store, compiled.name)
    await orchestrator.advance(run_id)  # (the input's step is applied at once)
    ids = [i.decode() for i in await redis.lrange(protocol.ready_key(QUEUE), 0, -1)]
    return NodeRunner(redis, [compiled], threads=2), run_id, ids


async def test_taking_jobs_starts_their_tasks_and_sends_their_run_once(
    monkeypatch: pytest.MonkeyPatch, protocol_redis: Callable[[], ArqRedis],
):
    """The take script loads each job's run and claims its task: `run_job` then has both
    without a round trip of its own. A run whose jobs are taken together is sent with the
    first only; the next take sends no checkpoint the worker has."""
    runner, run_id, ids = await first_step(parallel_graph("taking"), protocol_redis())
    replies: list[TakenJob] = []
    take = runner.jobs.take

    async def spy(*args: Any, **kwargs: Any) -> list[TakenJob]:
        taken = await take(*args, **kwargs)
        replies.extend(taken)
        return taken

    monkeypatch.setattr(runner.jobs, "take", spy)
    taken = await runner.take(ids[:2], lease=5.0, most=10)
    assert [t.job_id for t in taken] == ids[:2]
    fields, blob, _ = replies[0].started
    assert fields and blob  # the run and its checkpoint, with the first job only
    assert replies[1].started[:2] == [None, None]
    for job_id in ids[:2]:
        record, claim = runner.started[job_id]
        _, checkpoint_id, task_id = protocol.task_of_job(job_id) or ("", "", "")
        assert record is not None and record.run_id == run_id
        assert record.checkpoint_id == checkpoint_id and record.checkpoint is not None
        assert record.checkpoint.task(task_id) is not None
        assert claim and (claim.attempt, claim.lost, claim.failures) == (1, 0, 0)
    claims = runner.store.redis
    assert await claims.hget(protocol.claims_key(protocol.tag_of(run_id), checkpoint_id),
                             task_id) == b"1"

    [third] = await runner.take(ids[2:], lease=5.0, most=10)
    fields, blob, _ = third.started
    assert not fields and not blob  # this version of the run, and its checkpoint, are here
    record, claim = runner.started[ids[2]]
    assert record is runner.started[ids[0]][0] and claim and claim.attempt == 1


async def test_tasks_taken_again_together_are_claimed_each_as_alone(
    protocol_redis: Callable[[], ArqRedis],
):
    """The take claims the tasks of one step with one read and one write for all of them: each
    gets the claim it would get alone. Here two tasks whose first starts were lost (their
    leases lapsed) start their second attempts, and a third, whose outcome is in, starts none."""
    redis = protocol_redis()
    runner, run_id, ids = await first_step(parallel_graph("again"), redis)
    assert len(await runner.take(ids, lease=5.0, most=10)) == 3
    _, checkpoint_id, done_task = protocol.task_of_job(ids[2]) or ("", "", "")
    writes = protocol.writes_key(protocol.tag_of(run_id), checkpoint_id)
    await redis.hset(writes, done_task, b"posted")  # (as a post records it)
    for job_id in ids:  # their worker died: the leases lapse, the jobs come due
        await redis.delete(protocol.lease_key(job_id))
        await redis.zadd(QUEUE, {job_id: timestamp_ms() - 1}, xx=True)
    runner.started.clear()
    taken = await runner.take(ids, lease=5.0, most=10)
    assert [t.job_id for t in taken] == ids
    for job_id in ids[:2]:
        _, claim = runner.started[job_id]
        assert claim and (claim.attempt, claim.lost, claim.failures) == (2, 1, 0)
    assert runner.started[ids[2]][1] is None  # done: no attempt
    claims = protocol.claims_key(protocol.tag_of(run_id), checkpoint_id)
    assert await redis.hget(claims, done_task) == b"1"
    await redis.aclose()


async def test_taken_tasks_that_may_not_start_yet_are_loaded_not_claimed(
    protocol_redis: Callable[[], ArqRedis],
):
    """Tasks of a graph with node limits are claimed once a limit lets them start, and a job
    of another step than the run's is stale: the take reads their run but claims nothing."""
    runner, run_id, ids = await first_step(parallel_graph("limited", limit=1), protocol_redis())
    [job] = await runner.take(ids[:1], lease=5.0, most=10)
    record, claim = runner.started[job.job_id]
    assert record is not None and record.status == "running" and claim is False

    runner, run_id, ids = await first_step(parallel_graph("stale"), protocol_redis())
    _, checkpoint_id, task_id = protocol.task_of_job(ids[0]) or ("", "", "")
    stale = protocol.job_id(run_id, "an-earlier-checkpoint", task_id)
    await runner.store.redis.enqueue_job(protocol.TASK_FUNCTION, _job_id=stale, _queue_name=QUEUE)
    [job] = await runner.take([stale], lease=5.0, most=10)
    record, claim = runner.started[stale]
    assert record is not None and record.checkpoint_id == checkpoint_id and claim is False
    tag = protocol.tag_of(run_id)
    assert not await runner.store.redis.exists(protocol.claims_key(tag, checkpoint_id))


async def test_a_worker_starts_each_task_with_its_take_only(
    monkeypatch: pytest.MonkeyPatch, protocol_redis: Callable[[], ArqRedis],
):
    """On a running worker: a task's calls are its take and its post, no load of its own."""
    async with EmbeddedCluster([parallel_graph("started", width=4)], redis=protocol_redis()) as cluster:
        store = cluster.worker.runner.store
        loads: list[Any] = []
        load = store._load

        async def counting(*args: Any, **kwargs: Any) -> Any:
            loads.append(args)
            return await load(*args, **kwargs)

        monkeypatch.setattr(store, "_load", counting)
        handle = await cluster.client.submit("started", {"log": []})
        assert await handle.result() == {"log": ["p"] * 4}
        assert loads == []
        assert not cluster.worker.runner.started


async def test_a_garbled_run_fails_its_job_not_the_worker_taking_it(
    protocol_redis: Callable[[], ArqRedis],
):
    """A run whose record cannot be read (a field written by hand) does not stop the take: the
    job is taken, and fails as a job when it runs (here, its run read again)."""
    runner, run_id, ids = await first_step(parallel_graph("garbled"), protocol_redis())
    await runner.store.redis.hset(protocol.run_key(run_id), "status", "bogus")
    taken = await runner.take(ids, lease=5.0, most=10)
    assert [t.job_id for t in taken] == ids and not runner.started
    with pytest.raises(CorruptDataError, match="status"):
        await runner.store.load_run(run_id)


async def test_held_jobs_cost_the_sweep_nothing_until_their_leases_lapse(
    protocol_redis: Callable[[], ArqRedis],
):
    """A held job's queue score is its lease's end, moved on with each renewal: the sweep reads
    due jobs only (O(1) in the jobs held), and finds a job whose lease lapsed as it lapses."""
    redis = protocol_redis()
    jobs = JobQueue(redis, QUEUE)
    ids = [f"j{i}" for i in range(300)]
    for job_id in ids:
        await enqueue(redis, job_id)
    # (a lease long enough that none lapses while a loaded machine takes the 300)
    assert len(await jobs.take(ids, lease=2.0, most=300)) == 300
    assert await redis.zcount(QUEUE, "-inf", timestamp_ms()) == 0  # none due: none read
    assert (await jobs.sweep(read=1000, most=500, while_listed=500)).job_ids == []
    renewed = ids[:100]  # as the lease keeper renews the jobs its worker still runs
    await redis.eval(protocol.RENEW_LEASES_SCRIPT, 1 + len(renewed), QUEUE,
                     *[protocol.lease_key(j) for j in renewed],
                     "60000", str(timestamp_ms() + 60_000), *renewed)

    async def lapsed() -> list[str]:
        found = (await jobs.sweep(read=1000, most=500, while_listed=500)).job_ids
        return found if len(found) == 200 else []

    for _ in range(3000):  # until the other leases lapse (their worker "died")
        if found := await lapsed():
            break
        await asyncio.sleep(0.01)
    assert sorted(found) == sorted(ids[100:])
    # a job handed back is due at once; one retried later is not due before its time
    await jobs.requeue("j0", timestamp_ms(), listed=True)
    await jobs.requeue("j1", timestamp_ms() + 60_000, listed=False)
    assert await redis.lrange(protocol.ready_key(QUEUE), 0, -1) == [b"j0"]
    assert not await redis.exists(protocol.lease_key("j0"), protocol.lease_key("j1"))
    due = (await jobs.sweep(read=1000, most=500, while_listed=500)).job_ids
    assert "j0" in due and "j1" not in due
    await redis.aclose()
