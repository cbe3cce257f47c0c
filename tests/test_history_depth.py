"""A thread's history kept to a depth (the orchestrator's `--history-depth`): each commit that
lists a new checkpoint prunes the older ones with their writes, and the run's end deletes the
large values and the subgraph threads only they kept. Unset, a thread keeps every checkpoint,
as LangGraph's savers do. On the in-memory store and on fakeredis with the real Lua
(`protocol_redis`); tests/test_in_memory_store.py holds the two equal on a redis-server."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, TypedDict

import pytest

from arqgraph import protocol
from arqgraph.core import codec
from arqgraph.embedded import EmbeddedCluster
from arqgraph.errors import CheckpointPrunedError
from arqgraph.graph import END, START, StateGraph
from arqgraph.graph.compiled import CompiledStateGraph

LIMIT = 30
SIZE = 20_000  # (a blob: over protocol.blobs.BLOB_MIN)


class Loop(TypedDict, total=False):
    data: bytes
    n: int
    stop: int


def value(n: int) -> bytes:
    """The large value the loop holds after `n` steps: a new one each step."""
    return bytes([n % 256]) * SIZE


def blob_id(data: bytes) -> str:
    return hashlib.blake2b(codec.packb(data), digest_size=16).hexdigest()


def loop(name: str = "looper", inner: CompiledStateGraph | None = None) -> CompiledStateGraph:
    """A node run again and again until `n` reaches `stop`, writing a new large value each
    time (through a subgraph, if `inner` is given)."""
    builder = StateGraph(Loop)
    if inner is None:
        builder.add_node("grow", lambda s: {"data": value(s["n"] + 1), "n": s["n"] + 1})
    else:
        builder.add_node("grow", inner)
    builder.add_edge(START, "grow")
    builder.add_conditional_edges("grow", lambda s: "grow" if s["n"] < s["stop"] else END,
                                  ["grow", END])
    return builder.compile(name=name)


def inner_graph() -> CompiledStateGraph:
    builder = StateGraph(Loop)
    builder.add_node("step", lambda s: {"data": value(s["n"] + 1), "n": s["n"] + 1})
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder.compile()


def thread(name: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": name}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def run(cluster: EmbeddedCluster, graph: str, data: Any, config: dict[str, Any]) -> Any:
    handle = await cluster.client.submit(graph, data, config)
    return await asyncio.wait_for(handle.result(), LIMIT)


async def test_a_thread_keeps_its_newest_checkpoints_and_what_they_refer_to(
    protocol_redis: Any,
) -> None:
    redis = protocol_redis()
    async with EmbeddedCluster([loop()], redis=redis, history_depth=3) as cluster:
        client = cluster.client
        first = await client.submit("looper", {"data": value(0), "n": 0, "stop": 6},
                                    thread("t"))
        assert (await asyncio.wait_for(first.result(), LIMIT))["n"] == 6
        tag = protocol.thread_tag("t")
        # 8 checkpoints were saved (the input's, then one per step): the newest 3 are left
        history = await client.get_state_history(thread("t"))
        assert [s.values["n"] for s in history] == [6, 5, 4]
        assert all(s.values["data"] == value(s.values["n"]) for s in history)
        assert await redis.llen(protocol.history_key(tag)) == 3
        assert await redis.hlen(protocol.checkpoints_key(tag)) == 3
        kept = {s.config["configurable"]["checkpoint_id"] for s in history}
        writes = {k.decode().rsplit(":", 1)[1] for k in await redis.keys(f"*{{{tag}}}:writes:*")}
        assert writes and writes <= kept  # (the pruned steps' writes went with them)
        state = await client.get_state(thread("t"))
        assert state.values["n"] == 6 and state.next == ()
        # the run's events still refer to every value it showed: its values stay readable
        assert await redis.hlen(protocol.blobs_key(tag)) == 7
        seen = [e async for e in first.stream("values")]
        assert [e["n"] for e in seen] == list(range(7))
        assert all(e["data"] == value(e["n"]) for e in seen)

        # time travel to a kept checkpoint: it goes on from there (and prunes that one)
        oldest = history[-1]
        assert oldest.parent_config is not None
        gone = oldest.parent_config["configurable"]["checkpoint_id"]
        assert (await client.get_state(oldest.config)).values["n"] == 4
        assert (await run(cluster, "looper", None, oldest.config))["n"] == 6
        # to a pruned one: a typed error, for a read and for a run
        pruned = thread("t", gone)
        with pytest.raises(CheckpointPrunedError, match=gone):
            await client.get_state(pruned)
        with pytest.raises(CheckpointPrunedError, match="history-depth"):
            await run(cluster, "looper", None, pruned)

        # once the first run's events are gone (its retention), its values go with the next
        # run's end, but for those the kept checkpoints and the later runs' events refer to
        await redis.delete(protocol.events_key(first.run_id),
                           protocol.event_blobs_key(first.run_id))
        assert (await run(cluster, "looper", {"n": 100, "stop": 102}, thread("t")))["n"] == 102
        pruned_values = {blob_id(value(n)) for n in range(4)}  # (4 to 6: the fork's events)

        async def collected() -> set[str]:  # (by whoever ended the run, after its end)
            while pruned_values & (left := {i.decode() for i in await redis.hkeys(
                    protocol.blobs_key(tag))}):
                await asyncio.sleep(0.01)
            return left

        left = await asyncio.wait_for(collected(), LIMIT)
        history = await client.get_state_history(thread("t"))
        assert [s.values["n"] for s in history] == [102, 101, 100]
        assert [s.values["data"] for s in history] == [value(102), value(101), value(6)]
        assert {blob_id(s.values["data"]) for s in history} <= left


async def test_a_thread_without_a_depth_keeps_every_checkpoint(protocol_redis: Any) -> None:
    redis = protocol_redis()
    async with EmbeddedCluster([loop()], redis=redis) as cluster:
        result = await run(cluster, "looper", {"data": value(0), "n": 0, "stop": 4}, thread("u"))
        assert result["n"] == 4
        history = await cluster.client.get_state_history(thread("u"))
        assert [s.values.get("n") for s in history] == [4, 3, 2, 1, 0, None]  # (the input's)
        assert not await redis.hexists(protocol.thread_key(protocol.thread_tag("u")), "pruned")
        # an id the thread never had reads as no checkpoint, as in LangGraph
        state = await cluster.client.get_state(thread("u", "no-such-checkpoint"))
        assert state.values == {}


async def test_the_subgraph_threads_of_pruned_steps_are_deleted(protocol_redis: Any) -> None:
    redis = protocol_redis()
    graph = loop("nested", inner_graph())
    async with EmbeddedCluster([graph], redis=redis, history_depth=2) as cluster:
        result = await run(cluster, "nested", {"data": value(0), "n": 0, "stop": 5},
                           thread("s"))
        assert result == {"data": value(5), "n": 5, "stop": 5}
        state = await cluster.client.get_state(thread("s"), subgraphs=True)
        assert state.values["n"] == 5
        children = await cluster.client.store.threads.subgraph_threads("s")
        tags = {protocol.thread_tag(t) for t in ["s", *children]}
        assert len(children) == 1  # (the one its kept step ran: the latest has no tasks)

        async def threads_left() -> set[str]:  # (deleted by whoever ended the run, after it)
            while True:
                left = {k.decode().split("{")[1].split("}")[0]
                        for k in await redis.keys("*:checkpoints")}
                if left == tags:
                    return left
                await asyncio.sleep(0.01)

        await asyncio.wait_for(threads_left(), LIMIT)  # (five steps ran one each)
        assert not await redis.exists(protocol.orphans_key(protocol.thread_tag("s")))
        # time travel to the kept step that ran a subgraph: it runs it again from there
        history = await cluster.client.get_state_history(thread("s"))
        assert (await run(cluster, "nested", None, history[-1].config))["n"] == 5


async def test_a_run_stopped_at_an_interrupt_resumes_with_a_depth_of_one(
    protocol_redis: Any,
) -> None:
    from arqgraph.types import Command, interrupt

    builder = StateGraph(Loop)
    builder.add_node("grow", lambda s: {"data": value(s["n"] + 1), "n": s["n"] + 1})
    builder.add_node("ask", lambda s: {"n": s["n"] + int(interrupt("how many?"))})
    builder.add_edge(START, "grow")
    builder.add_conditional_edges("grow", lambda s: "grow" if s["n"] < s["stop"] else "ask",
                                  ["grow", "ask"])
    builder.add_edge("ask", END)
    async with EmbeddedCluster([builder.compile(name="asking")], redis=protocol_redis(),
                               history_depth=1) as cluster:
        asked = await run(cluster, "asking", {"data": value(0), "n": 0, "stop": 3}, thread("i"))
        assert asked["__interrupt__"][0].value == "how many?"
        assert len(await cluster.client.get_state_history(thread("i"))) == 1
        state = await cluster.client.get_state(thread("i"))
        assert state.next == ("ask",) and state.values["data"] == value(3)
        done = await run(cluster, "asking", Command(resume="10"), thread("i"))
        assert done == {"data": value(3), "n": 13, "stop": 3}
        assert [s.values["n"] for s in await cluster.client.get_state_history(thread("i"))] \
            == [13]
