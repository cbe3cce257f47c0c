"""Concurrent calls of one graph share one embedded cluster, and a call that stops following
its run stops that run only."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import pytest

from arqgraph import embedded
from arqgraph.graph import END, START, StateGraph

LIMIT = 30


class Count(TypedDict):
    n: int
    who: str


started: dict[str, int] = {}


async def _step(state: Count) -> dict[str, Any]:
    started[state["who"]] = started.get(state["who"], 0) + 1
    await asyncio.sleep(0.02)
    return {"n": state["n"] + 1}


def _loop_graph() -> Any:
    builder = StateGraph(Count)
    builder.add_node("step", _step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: END if s["n"] >= 8 else "step")
    return builder.compile(name="sharing")


async def test_concurrent_calls_share_one_cluster_and_each_gets_its_own_output(
        monkeypatch: pytest.MonkeyPatch) -> None:
    graph = _loop_graph()
    entered: list[int] = []
    enter = embedded.EmbeddedCluster.__aenter__

    async def counted(cluster: embedded.EmbeddedCluster) -> embedded.EmbeddedCluster:
        entered.append(id(cluster))
        return await enter(cluster)

    monkeypatch.setattr(embedded.EmbeddedCluster, "__aenter__", counted)
    outputs = await asyncio.wait_for(asyncio.gather(
        *(graph.ainvoke({"n": i % 3, "who": f"call-{i}"}) for i in range(30))), LIMIT)
    assert [o["n"] for o in outputs] == [8] * 30
    assert len(entered) == 1
    assert not embedded._SHARED.get(asyncio.get_running_loop())  # (the last call stopped it)
    await graph.ainvoke({"n": 0, "who": "later"})
    assert len(entered) == 2  # (a call after them starts a cluster of its own)


async def test_a_stream_closed_early_stops_its_run_and_not_the_others() -> None:
    graph = _loop_graph()
    started.clear()
    other = asyncio.ensure_future(graph.ainvoke({"n": 0, "who": "other"}))
    stream = graph.astream({"n": 0, "who": "left"})
    async for _ in stream:  # the first step, then the caller walks away
        break
    await stream.aclose()
    assert (await asyncio.wait_for(other, LIMIT))["n"] == 8
    assert started["left"] < 8  # it did not run to its end beside the other call
