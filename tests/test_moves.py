"""What one move of the orchestrator writes: a new step's jobs go with its commit when they can
(one round trip, and never a step committed without its jobs), else in chunks after it. On the
in-memory store and on fakeredis with the real Lua (`protocol_redis`), the orchestrator not
serving (its moves made by hand)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core.pregel import Checkpoint, TaskOutcome
from arqgraph.graph import START, StateGraph
from arqgraph.graph.compiled import CompiledStateGraph
from arqgraph.orchestrator.service import Orchestrator
from arqgraph.protocol import RunRecord
from arqgraph.storage import queue
from arqgraph.storage.commits import commit_call
from arqgraph.storage.moves import MovePlanner, new_checkpoint
from arqgraph.storage.queue import JobQueue, ScriptCall
from arqgraph.storage.runs import RunStore
from tests.graphs.one_node import LogState, submit


def graph(name: str, parallel: int = 1, **compile_args: list[str]) -> CompiledStateGraph:
    """START -> `parallel` nodes p0.. -> "last"."""
    builder = StateGraph(LogState)
    for i in range(parallel):
        builder.add_node(f"p{i}", lambda state: {"log": ["p"]})
        builder.add_edge(START, f"p{i}")
        builder.add_edge(f"p{i}", "last")
    builder.add_node("last", lambda state: {"log": ["last"]})
    return builder.compile(name=name, **compile_args)


async def started(compiled: CompiledStateGraph, monkeypatch: pytest.MonkeyPatch, redis: ArqRedis,
                  ) -> tuple[Orchestrator, str, list[int]]:
    """An orchestrator over `redis` with a run of `compiled` advanced once, and the sizes of the
    separate enqueue calls it makes (made so far and later)."""
    orchestrator = Orchestrator(redis, [compiled])
    await orchestrator.register()
    separate: list[int] = []
    enqueue = orchestrator.jobs._enqueue

    async def counting(keys: list[str], args: list[object]) -> object:
        separate.append((len(keys) - 3) // 2)
        return await enqueue(keys=keys, args=args)

    monkeypatch.setattr(orchestrator.jobs, "_enqueue", counting)
    run_id = await submit(orchestrator.store, compiled.name)
    await orchestrator.advance(run_id)
    return orchestrator, run_id, separate


async def finish_step(orchestrator: Orchestrator, run_id: str) -> list[str]:
    """Post an outcome for each task of the run's step, advance it; the step's nodes."""
    record = await orchestrator.store.load_run(run_id)
    assert record is not None and record.saved is not None
    for task in record.saved.checkpoint.tasks:
        await orchestrator.store.post_outcome(record.graph, run_id, record.checkpoint_id,
                                              TaskOutcome(task.id, task.node, {"log": [task.node]}))
    await orchestrator.advance(run_id)
    return sorted(t.node for t in record.saved.checkpoint.tasks)


async def ready(orchestrator: Orchestrator) -> list[str]:
    ids = await orchestrator.store.redis.lrange(protocol.ready_key(orchestrator.queue), 0, -1)
    tasks = [protocol.task_of_job(i.decode()) for i in ids]
    return [t[2].partition(":")[0] for t in tasks if t is not None]  # (their steps)


async def test_a_step_s_jobs_are_enqueued_by_its_commit(
    monkeypatch: pytest.MonkeyPatch, protocol_redis: Callable[[], ArqRedis],
):
    orchestrator, run_id, separate = await started(graph("g1"), monkeypatch, protocol_redis())
    assert await ready(orchestrator) == ["0"]  # p0's job, enqueued with step 0's commit
    assert await finish_step(orchestrator, run_id) == ["p0"]
    assert await ready(orchestrator) == ["0", "1"]  # and last's with step 1's
    assert await finish_step(orchestrator, run_id) == ["last"]
    assert await orchestrator.store.status(run_id) == "done"
    assert separate == []  # no enqueue of its own
    end = await orchestrator.store.events.end_event(run_id)
    assert end is not None and end["output"] == {"log": ["p0", "last"]}


async def test_jobs_of_more_than_one_call_are_enqueued_after_the_commit(
    monkeypatch: pytest.MonkeyPatch, protocol_redis: Callable[[], ArqRedis],
):
    monkeypatch.setattr(queue, "ENQUEUE_CHUNK", 2)
    orchestrator, run_id, separate = await started(graph("g3", parallel=3), monkeypatch,
                                                   protocol_redis())
    assert separate == [2, 1] and await ready(orchestrator) == ["0", "0", "0"]
    record = await orchestrator.store.load_run(run_id)
    assert record is not None
    writes = protocol.writes_key(record.tag, record.checkpoint_id)
    assert await orchestrator.store.redis.hget(writes, "__left") == b"3"
    assert await finish_step(orchestrator, run_id) == ["p0", "p1", "p2"]
    assert separate == [2, 1] and len(await ready(orchestrator)) == 4  # last's, with the commit


async def test_a_step_that_stops_at_a_breakpoint_has_no_jobs(
    monkeypatch: pytest.MonkeyPatch, protocol_redis: Callable[[], ArqRedis],
):
    orchestrator, run_id, separate = await started(
        graph("gb", interrupt_before=["last"]), monkeypatch, protocol_redis())
    assert await finish_step(orchestrator, run_id) == ["p0"]
    assert await orchestrator.store.status(run_id) == "interrupted"
    assert await ready(orchestrator) == ["0"] and separate == []


async def test_a_run_s_end_is_planned_with_the_retention_recorded_at_its_start(
    protocol_redis: Callable[[], ArqRedis],
):
    """A worker's planner has no retention of its own (it starts no runs): it plans a run's end
    with the one its orchestrator recorded when starting the run, and plans none for a run
    started without (by an older orchestrator: the orchestrator ends it, told by the post)."""
    compiled = graph("kept")
    orchestrator = Orchestrator(protocol_redis(), [compiled], retention=1234)
    await orchestrator.register()
    run_id = await submit(orchestrator.store, compiled.name)
    await orchestrator.advance(run_id)
    assert await finish_step(orchestrator, run_id) == ["p0"]
    redis = orchestrator.store.redis
    store = RunStore(redis)
    workers = MovePlanner(JobQueue(redis, orchestrator.queue))
    record = await store.load_run(run_id)
    assert record is not None and record.saved is not None and record.retention == 1234
    last = record.saved.checkpoint.tasks[0]
    outcomes = {last.id: TaskOutcome(last.id, last.node, {"log": ["last"]})}
    old = workers.plan(compiled, record.model_copy(update={"retention": None}), outcomes)
    assert old.end is None and old.move is None
    plan = workers.plan(compiled, record, outcomes)
    assert plan.move is None and plan.end is not None
    assert await store.commit(plan.end)
    assert await store.status(run_id) == "done"
    assert 0 < await redis.ttl(protocol.run_key(run_id)) <= 1234
    assert not await redis.sismember(protocol.active_key(compiled.name), run_id)
    end = await store.events.end_event(run_id)
    assert end is not None and end["output"] == {"log": ["p0", "last"]}


async def test_a_worker_s_end_is_not_made_once_a_cancel_was_asked_for(
    protocol_redis: Callable[[], ArqRedis],
):
    """The post that brings a run's end with it makes no commit once a cancel was asked for
    (not even the end): the orchestrator is told, and ends the run cancelled."""
    compiled = graph("cancelled_end")
    orchestrator = Orchestrator(protocol_redis(), [compiled])
    await orchestrator.register()
    run_id = await submit(orchestrator.store, compiled.name)
    await orchestrator.advance(run_id)
    assert await finish_step(orchestrator, run_id) == ["p0"]
    store = RunStore(orchestrator.store.redis)
    record = await store.load_run(run_id)
    assert record is not None and record.saved is not None
    last = record.saved.checkpoint.tasks[0]
    outcome = TaskOutcome(last.id, last.node, {"log": ["last"]})
    plan = MovePlanner(JobQueue(store.redis, orchestrator.queue)).plan(
        compiled, record, {last.id: outcome})
    assert plan.end is not None
    await store.redis.hset(protocol.run_key(run_id), "cancel", "1")
    posted = await store.post_outcome(compiled.name, run_id, record.checkpoint_id, outcome,
                                      move=plan.end)
    assert posted.code == 1 and await store.status(run_id) == "running"
    await orchestrator.advance(run_id)
    assert await store.status(run_id) == "cancelled"


def test_a_commit_that_ends_a_run_needs_a_retention_tells_its_waiter_and_enqueues_nothing():
    record = RunRecord(run_id=protocol.new_run_id("t"), graph="g", status="running", version=3,
                       thread_id="t", checkpoint_id="c1", waiter="client-7")
    with pytest.raises(ValueError, match="needs a retention"):
        commit_call(record, status="done")
    with pytest.raises(ValueError, match="enqueues no jobs"):
        commit_call(record, status="done", retention=60, jobs=ScriptCall(["k"], ["a"]))
    ends = commit_call(record, status="done", retention=60)
    assert ends.call.keys[-2:] == [protocol.active_key("g"), protocol.ends_key("client-7")]
    assert ends.call.args[:2] == ["3:c1", "2"] and ends.call.args[5] == "60"
    fields = ends.call.args[14:18]  # the run's fields: its status, and when it finished
    assert fields[:3] == ["status", "done", "finished"] and float(fields[3]) > 0
    with pytest.raises(ValueError, match="new checkpoint it saves"):
        commit_call(record, jobs=ScriptCall(["job-key"], ["job-arg"]))
    saved = new_checkpoint(record, Checkpoint(step=1, values={}, tasks=()), "loop", "c1")
    moves = commit_call(record, saved=saved, new=True, jobs=ScriptCall(["job-key"], ["job-arg"]))
    assert moves.call.keys[-1] == "job-key" and moves.call.args[-1] == "job-arg"
    assert protocol.ends_key("client-7") not in moves.call.keys and moves.call.args[5] == ""


async def test_a_commit_planned_on_a_checkpoint_the_run_no_longer_has_is_refused(
    protocol_redis: Callable[[], ArqRedis],
):
    """After a failover that lost the last writes, a run's version can come round again on
    another checkpoint: a commit planned on the lost one must not apply there."""
    store = RunStore(protocol_redis())
    run_id = protocol.new_run_id("t")
    await store.create_run(run_id, "g", thread_id="t", keep=False, kind="input",
                           input={"x": 1}, config={}, context=None)
    record = await store.load_run(run_id)
    assert record is not None and record.version == 0
    lost = record.model_copy(update={"checkpoint_id": "lost-in-the-failover"})
    assert not await store.commit(commit_call(lost, status="running"))
    assert await store.status(run_id) == "pending"
    assert await store.commit(commit_call(record, status="running"))
    assert await store.status(run_id) == "running"


async def test_a_run_rolled_back_to_its_version_on_another_checkpoint_is_read_again(
    protocol_redis: Callable[[], ArqRedis], monkeypatch: pytest.MonkeyPatch,
):
    """A failover that lost the last writes can show a run's version again on another
    checkpoint: a process that kept the run's record must not take it for the run's (a worker
    took the new step's jobs for stale ones and dropped them: the run stalled)."""
    orchestrator, run_id, _ = await started(graph("rolled"), monkeypatch, protocol_redis())
    store = orchestrator.store
    kept = await store.load_run(run_id)
    assert kept is not None and kept.saved is not None
    other = kept.saved.model_copy(update={"id": "after-the-failover"})
    redis = store.redis
    await redis.hset(protocol.checkpoints_key(protocol.tag_of(run_id)), other.id,
                     protocol.encode_saved(other))
    await redis.hset(protocol.run_key(run_id), "checkpoint_id", other.id)  # (same version)
    again = await store.load_run(run_id)
    assert again is not None and again.version == kept.version
    assert (again.checkpoint_id, again.saved and again.saved.id) == (other.id, other.id)
