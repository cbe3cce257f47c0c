"""The smallest graph: one node that appends "ran" to `log` (for tests of the machinery around
runs, not of what graphs do)."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from shared.graph import END, START, StateGraph
from shared.graph.compiled import CompiledStateGraph


class LogState(TypedDict, total=False):
    log: Annotated[list, operator.add]


def one_node_graph(name: str) -> CompiledStateGraph:
    builder = StateGraph(LogState)
    builder.add_node("node", lambda state: {"log": ["ran"]})
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    return builder.compile(name=name)
