"""What a slow or vanished reader can make Redis hold: a run's stream keeps its last
`protocol.EVENTS_KEPT` events, a reader that fell further behind is told so, and the child
runs a cancel must reach are kept apart from the trimmed stream."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import pytest

from arqgraph import protocol
from arqgraph.config import get_stream_writer
from arqgraph.embedded import EmbeddedCluster
from arqgraph.errors import EventsDroppedError
from arqgraph.graph import END, START, StateGraph

LIMIT = 60
WRITES = protocol.EVENTS_KEPT + 3_000


class Count(TypedDict):
    x: int


async def _chatty(state: Count) -> dict[str, Any]:
    write = get_stream_writer()
    for i in range(WRITES):
        write({"i": i})
    return {"x": state["x"] + 1}


def _graph() -> Any:
    builder = StateGraph(Count)
    builder.add_node("chatty", _chatty)
    builder.add_edge(START, "chatty")
    builder.add_edge("chatty", END)
    return builder.compile(name="chatty")


async def test_a_reader_that_fell_behind_is_told_and_the_stream_stays_bounded() -> None:
    graph = _graph()
    async with EmbeddedCluster([graph]) as cluster:
        handle = await cluster.client.submit(graph.name, {"x": 0}, stream_mode=["custom"])
        # nobody reads while the run goes: its result still comes
        assert await asyncio.wait_for(handle.result(), LIMIT) == {"x": 1}
        kept = await cluster.redis.xlen(protocol.events_key(handle.run_id))
        assert protocol.EVENTS_KEPT <= kept <= protocol.EVENTS_KEPT + 200  # ('~': whole blocks)
        read = 0
        with pytest.raises(EventsDroppedError, match="fell behind"):
            async for _ in handle.stream(["custom"]):
                read += 1
        assert read == 0  # told before any event, not after a gap


class Outer(TypedDict):
    x: int


def _with_subgraph() -> Any:
    inner = StateGraph(Outer)
    inner.add_node("add", lambda state: {"x": state["x"] + 1})
    inner.add_edge(START, "add")
    inner.add_edge("add", END)
    outer = StateGraph(Outer)
    outer.add_node("child", inner.compile())
    outer.add_edge(START, "child")
    outer.add_edge("child", END)
    return outer.compile(name="parent")


async def test_child_runs_are_found_after_their_events_were_trimmed() -> None:
    graph = _with_subgraph()
    async with EmbeddedCluster([graph]) as cluster:
        handle = await cluster.client.submit(graph.name, {"x": 0})
        assert await asyncio.wait_for(handle.result(), LIMIT) == {"x": 1}
        events = cluster.client.store.events
        children = await events.children(handle.run_id)
        assert len(children) == 1
        await cluster.redis.xtrim(protocol.events_key(handle.run_id), maxlen=0)
        assert await events.children(handle.run_id) == children


async def test_a_real_redis_trims_and_tells_the_same(redis_server: Any) -> None:
    """The same bound and the same check on a redis-server (its '~' trims whole blocks)."""
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool

    from arqgraph.storage.connection import job_deserializer, job_serializer
    from arqgraph.storage.runs import RunStore

    redis = ArqRedis(ConnectionPool.from_url(redis_server.url), job_serializer=job_serializer,
                     job_deserializer=job_deserializer)
    store = RunStore(redis)
    run_id = protocol.new_run_id("cap-thread")
    await redis.hset(protocol.run_key(run_id), "status", "running")
    try:
        key = protocol.events_key(run_id)
        for first in range(0, WRITES, 5_000):  # (as `Events.emit` writes them, pipelined)
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(first, min(first + 5_000, WRITES)):
                    pipe.xadd(key, protocol.encode_event("custom", {"i": i}),  # type: ignore[arg-type]
                              maxlen=protocol.EVENTS_KEPT, approximate=True)
                await pipe.execute()
        kept = await redis.xlen(key)
        assert protocol.EVENTS_KEPT <= kept <= protocol.EVENTS_KEPT + 200
        with pytest.raises(EventsDroppedError, match="fell behind"):
            async for _ in store.events.read(run_id, block_ms=10):
                pass
    finally:
        await redis.delete(protocol.run_key(run_id), protocol.events_key(run_id))
        await redis.aclose()
