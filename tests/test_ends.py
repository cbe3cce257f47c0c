"""How producers hear that their runs ended (arqgraph.storage.ends), on the embedded default."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, TypedDict

import pytest

from arqgraph import client as client_module
from arqgraph import protocol
from arqgraph.embedded import EmbeddedCluster
from arqgraph.graph import END, START, StateGraph
from arqgraph.storage import ends as ends_module
from arqgraph.storage.events import Events

LIMIT = 30


class State(TypedDict, total=False):
    x: int
    log: Annotated[list, operator.add]


def add_one() -> object:
    builder = StateGraph(State)
    builder.add_node("one", lambda s: {"x": s["x"] + 1, "log": ["one"]})
    builder.add_node("two", lambda s: {"x": s["x"] + 1, "log": ["two"]})
    builder.add_edge(START, "one")
    builder.add_edge("one", "two")
    builder.add_edge("two", END)
    return builder.compile(name="add")


async def test_many_results_awaited_at_once_each_get_their_own_run():
    async with EmbeddedCluster([add_one()]) as cluster:
        handles = await asyncio.gather(*(cluster.client.submit("add", {"x": i})
                                         for i in range(150)))
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), LIMIT)
        assert [r["x"] for r in results] == [i + 2 for i in range(150)]
        # each end was told to the client that submitted it, and nothing is left to tell
        key = protocol.ends_key(cluster.client.ends.waiter)
        assert await cluster.redis.llen(key) == 0
        assert not cluster.client.ends._waiting


async def test_a_run_that_ended_before_anyone_asked_still_gives_its_result():
    async with EmbeddedCluster([add_one()]) as cluster:
        first = await cluster.client.submit("add", {"x": 1})
        second = await cluster.client.submit("add", {"x": 10})
        # the first's end is heard while waiting for the second, and kept for later
        assert (await asyncio.wait_for(second.result(), LIMIT))["x"] == 12
        assert (await asyncio.wait_for(first.result(), LIMIT))["x"] == 3
        assert (await asyncio.wait_for(first.result(), LIMIT))["x"] == 3  # asked twice


async def test_without_the_notice_the_run_status_still_ends_the_wait(
    monkeypatch: pytest.MonkeyPatch,
):
    async def lost(self: Events, waiter: str, timeout: float) -> list[str]:
        await asyncio.sleep(timeout)  # the notice never comes (its ends list was lost)
        return []

    monkeypatch.setattr(Events, "wait_ends", lost)
    monkeypatch.setattr(ends_module, "END_CHECK", 0.05)
    async with EmbeddedCluster([add_one()]) as cluster:
        handle = await cluster.client.submit("add", {"x": 5})
        assert (await asyncio.wait_for(handle.result(), LIMIT))["x"] == 7


async def test_a_handle_from_another_client_reads_the_run_events():
    async with EmbeddedCluster([add_one()]) as cluster:
        handle = await cluster.client.submit("add", {"x": 0})
        other = client_module.Client(cluster.redis)  # no notice comes to this one
        attached = other.handle(handle.run_id, "add")
        assert attached.watch is None
        assert (await asyncio.wait_for(attached.result(), LIMIT)) == {"x": 2, "log": ["one", "two"]}
        assert (await asyncio.wait_for(handle.result(), LIMIT)) == {"x": 2, "log": ["one", "two"]}


async def test_a_failed_run_raises_through_the_notice_too():
    def boom(state: State) -> dict:
        raise KeyError("nope")

    builder = StateGraph(State)
    builder.add_node("boom", boom)
    builder.add_edge(START, "boom")
    builder.add_edge("boom", END)
    async with EmbeddedCluster([builder.compile(name="boom")]) as cluster:
        handle = await cluster.client.submit("boom", {"x": 0})
        with pytest.raises(KeyError, match="nope"):
            await asyncio.wait_for(handle.result(), LIMIT)


async def test_poison_in_a_producer_s_ends_list_is_set_aside_and_its_runs_still_end():
    from arqgraph.storage.dead_letters import dead_letters

    async with EmbeddedCluster([add_one()]) as cluster:
        key = protocol.ends_key(cluster.client.ends.waiter)
        await cluster.redis.rpush(key, b"\xff\xfe", b"not-a-run-id")
        handle = await cluster.client.submit("add", {"x": 1})
        assert (await asyncio.wait_for(handle.result(), LIMIT))["x"] == 3
        letters = await dead_letters(cluster.redis)
        assert {(d.where, d.data) for d in letters} == {(key, b"\xff\xfe"),
                                                        (key, b"not-a-run-id")}
