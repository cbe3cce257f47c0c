"""The smallest graph: one node that appends "ran" to `log` (for tests of the machinery around
runs, not of what graphs do)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from arqgraph import protocol
from arqgraph.graph import END, START, StateGraph
from arqgraph.graph.compiled import CompiledStateGraph
from arqgraph.storage.runs import RunStore


class LogState(TypedDict, total=False):
    log: Annotated[list, operator.add]


def one_node_graph(name: str) -> CompiledStateGraph:
    builder = StateGraph(LogState)
    builder.add_node("node", lambda state: {"log": ["ran"]})
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    return builder.compile(name=name)


async def submit(store: RunStore, graph: str, **options: Any) -> str:
    """A run of `graph` (on a `LogState`) on thread t1, created as a producer submits it (its
    orchestrators told); its id. `options`: more of `create_run`'s (a `waiter`, say)."""
    run_id = protocol.new_run_id("t1")
    await store.create_run(run_id, graph, thread_id="t1", keep=False, kind="input",
                           input={"log": []}, config={}, context=None, **options)
    return run_id
