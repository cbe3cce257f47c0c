"""What a process keeps of the runs it reads: bounded in entries and in bytes, never stale.

Fast tests on the in-memory store and on fakeredis with the real Lua (`protocol_redis`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core.pregel import TaskOutcome
from arqgraph.embedded import EmbeddedCluster
from arqgraph.graph import START, StateGraph
from arqgraph.orchestrator.service import Orchestrator
from arqgraph.storage import cache
from arqgraph.storage.runs import RunStore
from tests.graphs.one_node import LogState, one_node_graph, submit


async def test_kept_checkpoints_stay_within_their_bytes_and_runs_leave_with_them(
    monkeypatch: pytest.MonkeyPatch, protocol_redis: Callable[[], ArqRedis],
):
    async with EmbeddedCluster([one_node_graph("echo")], redis=protocol_redis()) as cluster:
        handles = [await cluster.client.submit("echo", {"log": [f"{i}" * 20_000]}) for i in range(5)]
        for handle in handles:
            await handle.result()
        reader = RunStore(cluster.redis)
        first = await reader.load_run(handles[0].run_id)
        assert first is not None and first.saved is not None
        size = len(protocol.encode_saved(first.saved))
        monkeypatch.setattr(cache, "CHECKPOINT_BYTES", int(2.5 * size))
        records = [first] + [await reader.load_run(h.run_id) for h in handles[1:]]

        assert reader.cache.checkpoint_bytes <= cache.CHECKPOINT_BYTES
        assert reader.cache.checkpoint_ids() == [r.checkpoint_id for r in records[-2:] if r]
        assert reader.cache.run_ids() == [h.run_id for h in handles[-2:]]  # the others left
        again = await reader.load_run(handles[0].run_id)  # read in full again, the same
        assert again == first and again is not first


async def test_a_known_run_is_not_read_back_until_it_changes(
    protocol_redis: Callable[[], ArqRedis],
):
    async with EmbeddedCluster([one_node_graph("echo")], redis=protocol_redis()) as cluster:
        handle = await cluster.client.submit("echo", {"log": []})
        await handle.result()
        reader = RunStore(cluster.redis)
        record = await reader.load_run(handle.run_id)
        assert record is not None
        assert await reader.load_run(handle.run_id) is record  # same version: kept
        # another process moves the run on (here: by hand, to a new version and status)
        await cluster.redis.hset(protocol.run_key(handle.run_id), mapping={
            "version": record.version + 1, "status": "failed"})
        latest = await reader.load_run(handle.run_id)
        assert latest is not None and latest is not record
        assert (latest.version, latest.status) == (record.version + 1, "failed")
        assert latest.saved == record.saved  # its checkpoint, unchanged, was not sent again


async def test_a_step_s_outcomes_come_with_the_run_to_whoever_knows_its_step(
    protocol_redis: Callable[[], ArqRedis],
):
    """The orchestrator reads a run and its step's outcomes in one round trip: when the run is
    still on the step it committed, the outcomes posted since come with the load."""
    builder = StateGraph(LogState)
    builder.add_node("a", lambda state: {"log": ["a"]})
    builder.add_node("b", lambda state: {"log": ["b"]})
    builder.add_edge(START, "a")
    builder.add_edge(START, "b")
    orchestrator = Orchestrator(protocol_redis(), [builder.compile(name="two")])
    await orchestrator.register()
    store = orchestrator.store
    run_id = await submit(store, "two")
    await orchestrator.advance(run_id)  # started: step 0's two tasks enqueued

    record, outcomes = await store.load_step(run_id)
    assert record is not None and record.saved is not None and outcomes == {}
    a, b = sorted(record.saved.checkpoint.tasks, key=lambda t: t.node)
    posted = TaskOutcome(a.id, "a", {"log": ["a"]})
    await store.post_outcome("two", run_id, record.checkpoint_id, posted)
    again, outcomes = await store.load_step(run_id)
    assert again is record and outcomes == {a.id: posted}

    stranger, unknown = await RunStore(store.redis).load_step(run_id)  # knows no step of it
    assert stranger == record and unknown is None

    await store.post_outcome("two", run_id, record.checkpoint_id, TaskOutcome(b.id, "b", {"log": ["b"]}))
    await orchestrator.advance(run_id)  # both in: the run ends
    done, outcomes = await store.load_step(run_id)
    assert done is not None and done.status == "done" and outcomes is None
    assert sorted((await store.outcomes(done.tag, record.checkpoint_id, [a.id, b.id])).values(),
                  key=lambda o: o.node) == [posted, TaskOutcome(b.id, "b", {"log": ["b"]})]
