"""What a run of a large state keeps in Redis: each large value once (its thread's blobs), not
a copy per checkpoint, per "values" event and in the run's record; and a thread written
before blobs (its values inline) still loads and goes on."""

from __future__ import annotations

import asyncio
import operator
import os
from typing import Annotated, Any, TypedDict

import pytest

from arqgraph import protocol
from arqgraph.embedded import EmbeddedCluster
from arqgraph.protocol import blobs as large
from bench.state_memory import chain

LIMIT = 60
SIZE = 3 * 1024 * 1024  # (the bench runs 50 MB: `python -m bench.state_memory`)


def _thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


async def _tag_bytes(redis: Any, tag: str) -> dict[str, int]:
    """MEMORY USAGE of each key of the thread's hash tag (its run's keys share it)."""
    sizes = {}
    async for key in redis.scan_iter(match=f"*{{{tag}}}*", count=1000):
        sizes[key.decode()] = int(await redis.memory_usage(key, samples=0) or 0)
    return sizes


async def _run_chain(cluster: EmbeddedCluster, thread: str, data: bytes) -> list[Any]:
    """Run the 3-node chain on `thread`, reading its "values" events as they come."""
    handle = await cluster.client.submit("big_chain", {"data": data, "n": 0}, _thread(thread),
                                         stream_mode=["values"])
    seen = [event async for event in handle.stream("values")]
    assert (await asyncio.wait_for(handle.result(), LIMIT))["n"] == 3
    return seen


async def test_a_large_state_is_kept_once(redis_server: Any) -> None:
    from arqgraph.storage.connection import connect

    data = os.urandom(SIZE)
    async with EmbeddedCluster([chain()], redis=await connect(redis_server.url)) as cluster:
        seen = await _run_chain(cluster, "large-state", data)
        # every "values" event shows the whole state, read back from its blob
        assert [e["n"] for e in seen] == [0, 1, 2, 3]
        assert all(e["data"] == data for e in seen)
        sizes = await _tag_bytes(cluster.redis, protocol.thread_tag("large-state"))
        assert sum(sizes.values()) < 2 * SIZE, sizes
        # the checkpoints refer to one blob; each one reads back whole
        history = await cluster.client.get_state_history(_thread("large-state"))
        assert len(history) == 5 and history[-1].values == {}  # (the input's: none yet)
        assert all(s.values["data"] == data for s in history[:-1])
        assert await cluster.redis.hlen(protocol.blobs_key(protocol.thread_tag("large-state"))) == 1
        # a fork of an older checkpoint reads its state back too
        fork = history[2].config
        handle = await cluster.client.submit("big_chain", None, fork)
        assert (await asyncio.wait_for(handle.result(), LIMIT)) == {"data": data, "n": 3}
        await cluster.client.delete_thread("large-state")
        left = await _tag_bytes(cluster.redis, protocol.thread_tag("large-state"))
        assert left and all(":run:" in k or ":events:" in k for k in left)  # (in retention)


async def test_a_thread_written_before_blobs_still_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints with their large values inline (as every version before blobs wrote them)
    load, and a run that goes on from them keeps its new values apart."""
    data = os.urandom(64 * 1024)
    async with EmbeddedCluster([chain()]) as cluster:
        with monkeypatch.context() as patch:
            patch.setattr(large, "BLOB_MIN", 1 << 40)  # (nothing is large: the old layout)
            await _run_chain(cluster, "old-thread", data)
        tag = protocol.thread_tag("old-thread")
        assert not await cluster.redis.exists(protocol.blobs_key(tag))
        state = await cluster.client.get_state(_thread("old-thread"))
        assert state.values == {"data": data, "n": 3}
        seen = await _run_chain(cluster, "old-thread", data)  # (the input starts it again)
        assert all(e["data"] == data for e in seen)
        assert await cluster.redis.hlen(protocol.blobs_key(tag)) == 1
        history = await cluster.client.get_state_history(_thread("old-thread"))
        assert len(history) == 10
        assert all(s.values["data"] == data for s in history if s.values)


def _writer() -> Any:
    """One node that writes a new large value."""
    from arqgraph.graph import END, START, StateGraph
    from bench.state_memory import Big

    builder = StateGraph(Big)
    builder.add_node("grow", lambda state: {"data": state["data"] * 2, "n": 1})
    builder.add_edge(START, "grow")
    builder.add_edge("grow", END)
    return builder.compile(name="grow")


async def test_events_refer_to_a_new_large_value_kept_once(protocol_redis: Any) -> None:
    """A node's large update shows whole in "updates" and "values" events, which refer to the
    blob the next checkpoint keeps (one blob per distinct value), not copies of it."""
    data = os.urandom(64 * 1024)
    async with EmbeddedCluster([_writer()], redis=protocol_redis()) as cluster:
        handle = await cluster.client.submit("grow", {"data": data, "n": 0}, _thread("grow"),
                                             stream_mode=["updates", "values"])
        seen = [e async for e in handle.stream(["updates", "values"])]
        assert seen == [("values", {"data": data, "n": 0}),
                        ("updates", {"grow": {"data": data * 2, "n": 1}}),
                        ("values", {"data": data * 2, "n": 1})]
        assert await handle.result() == {"data": data * 2, "n": 1}
        tag = protocol.thread_tag("grow")
        assert await cluster.redis.hlen(protocol.blobs_key(tag)) == 2
        events = await cluster.redis.xrange(protocol.events_key(handle.run_id))
        assert all(len(fields[b"data"]) < 1024 for _, fields in events)


async def test_a_lost_blob_fails_the_run_that_needs_it() -> None:
    """A thread whose blobs are gone (deleted by hand) fails the run that reads it, naming
    the state key, instead of running on without the value."""
    from arqgraph.errors import CorruptDataError

    data = os.urandom(64 * 1024)
    async with EmbeddedCluster([chain()]) as cluster:
        await _run_chain(cluster, "lost-blob", data)
        await cluster.redis.delete(protocol.blobs_key(protocol.thread_tag("lost-blob")))
        with pytest.raises(CorruptDataError, match="'data'"):
            await cluster.client.get_state(_thread("lost-blob"))
        handle = await cluster.client.submit("big_chain", None, _thread("lost-blob"))
        with pytest.raises(Exception, match="gone from its thread's blobs"):
            await asyncio.wait_for(handle.result(), LIMIT)


async def test_blobs_expire_with_the_checkpoints_of_a_thread_not_kept(protocol_redis: Any) -> None:
    data = os.urandom(64 * 1024)
    async with EmbeddedCluster([chain()], redis=protocol_redis()) as cluster:
        handle = await cluster.client.submit("big_chain", {"data": data, "n": 0})
        assert (await asyncio.wait_for(handle.result(), LIMIT))["n"] == 3
        tag = protocol.tag_of(handle.run_id)
        ttl = await cluster.redis.ttl(protocol.blobs_key(tag))
        checkpoints_ttl = await cluster.redis.ttl(protocol.checkpoints_key(tag))
        assert ttl > 0 and abs(ttl - checkpoints_ttl) <= 1  # (set together, read apart)
        assert not await cluster.redis.hexists(protocol.run_key(handle.run_id), "input")


class _Fan(TypedDict, total=False):
    data: bytes
    seen: Annotated[list[int], operator.add]


def _fan_out() -> Any:
    """A node that writes a new large value, then a Send per item carrying it to a task."""
    from arqgraph.graph import END, START, StateGraph
    from arqgraph.types import Send

    builder = StateGraph(_Fan)
    builder.add_node("grow", lambda state: {"data": state["data"][::-1]})
    builder.add_node("work", lambda arg: {"seen": [len(arg["doc"]) + arg["i"]]})
    builder.add_edge(START, "grow")
    builder.add_conditional_edges(
        "grow", lambda state: [Send("work", {"doc": state["data"], "i": i}) for i in range(4)],
        ["work"])
    builder.add_edge("work", END)
    return builder.compile(name="fan_large")


async def test_a_new_large_value_and_its_send_arguments_are_kept_once(redis_server: Any) -> None:
    """A node's new large value and the Sends carrying it to four tasks keep it once: the
    step's outcomes and the next checkpoint's tasks refer to the blob (they used to hold it
    inline, nine copies in all)."""
    from arqgraph.storage.connection import connect

    data = os.urandom(SIZE)
    async with EmbeddedCluster([_fan_out()], redis=await connect(redis_server.url)) as cluster:
        handle = await cluster.client.submit("fan_large", {"data": data}, _thread("fan-large"))
        result = await asyncio.wait_for(handle.result(), LIMIT)
        assert result == {"data": data[::-1], "seen": [SIZE, SIZE + 1, SIZE + 2, SIZE + 3]}
        tag = protocol.thread_tag("fan-large")
        sizes = await _tag_bytes(cluster.redis, tag)
        assert sum(sizes.values()) < 2 * (2 * SIZE), sizes  # (two distinct large values)
        assert all(n < 64 * 1024 for k, n in sizes.items() if not k.endswith(":blobs")), sizes
        history = await cluster.client.get_state_history(_thread("fan-large"))
        sends = [t for s in history for t in s.tasks if t.name == "work"]
        assert len(sends) == 4 and history[0].values == result


async def test_task_and_checkpoint_events_refer_to_large_values(redis_server: Any) -> None:
    """The "tasks" and "checkpoints" events (and so "debug", read from them) refer to the
    blobs of large values, as "values" events do: a run of the chain streamed in every mode
    used to copy the state into each task's start and each checkpoint's event."""
    from arqgraph.storage.connection import connect

    data = os.urandom(SIZE)
    modes = ["values", "tasks", "checkpoints", "debug"]
    async with EmbeddedCluster([chain()], redis=await connect(redis_server.url)) as cluster:
        handle = await cluster.client.submit("big_chain", {"data": data, "n": 0},
                                             _thread("all-modes"), stream_mode=modes)
        seen = [event async for event in handle.stream(modes)]
        assert (await asyncio.wait_for(handle.result(), LIMIT))["n"] == 3
        # the client sees every value whole
        starts = [p for m, p in seen if m == "tasks" and "input" in p]
        assert [p["name"] for p in starts] == ["a", "b", "c"]
        assert all(p["input"]["data"] == data for p in starts)
        results = [p for m, p in seen if m == "tasks" and "result" in p]
        assert [p["result"] for p in results] == [{"n": 1}, {"n": 2}, {"n": 3}]
        checkpoints = [p for m, p in seen if m == "checkpoints"]
        assert len(checkpoints) == 5 and all(p["values"]["data"] == data
                                             for p in checkpoints[1:])
        debug = [p for m, p in seen if m == "debug"]
        assert len(debug) == len(starts) + len(results) + len(checkpoints)
        assert all(d["payload"]["values"]["data"] == data for d in debug
                   if d["type"] == "checkpoint" and d["payload"]["values"])
        assert all(d["payload"]["input"]["data"] == data for d in debug if d["type"] == "task")
        # the stream holds references: no entry near the state's size
        entries = await cluster.redis.xrange(protocol.events_key(handle.run_id))
        assert max(len(fields[b"data"]) for _, fields in entries) < large.BLOB_MIN
        sizes = await _tag_bytes(cluster.redis, protocol.thread_tag("all-modes"))
        assert sum(sizes.values()) < 2 * SIZE, sizes


def test_event_values_of_every_shape_go_to_blobs_and_come_back() -> None:
    """A task's input may be a state, a Send's argument or a call's arguments, a result a
    dict of writes, a checkpoint's values an entrypoint's value: each large one is kept apart
    and put back whole."""
    from arqgraph.core import codec

    big = os.urandom(20_000)

    def event(**payload: Any) -> dict[str, Any]:
        return {"step": 1, "timestamp": "t", "payload": {"id": "i", "name": "n", **payload}}

    cases = [("tasks", event(input={"data": big, "n": 1}, triggers=["start:n"])),
             ("tasks", event(input=big, triggers=["__pregel_push"])),
             ("tasks", event(input=((big,), {"k": big}), triggers=["__pregel_push"])),
             ("tasks", event(error=None, result={"data": big}, interrupts=[])),
             ("checkpoints", event(values=big, config={}, next=[], tasks=[])),
             ("checkpoints", event(values={"data": big}, config={}, next=[], tasks=[]))]
    for mode, payload in cases:
        kept: dict[str, bytes] = {}
        stored = codec.unpackb(codec.packb(protocol.split_event(mode, payload, kept)))
        assert len(kept) == 1 and len(codec.packb(stored)) < 1024, (mode, payload["payload"])
        assert protocol.event_refs(mode, stored) == set(kept)
        assert protocol.event_with_blobs(mode, stored, kept) == codec.unpackb(codec.packb(payload))
