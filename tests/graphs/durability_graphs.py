"""A graph whose node runs a subgraph, built by library prefix ("langgraph" or "arqgraph") so
the same code builds the reference and the candidate, embedded or served by a cluster
(`tests.differential.served:GRAPHS`)."""

from __future__ import annotations

import importlib
import operator
from typing import Annotated, Any, TypedDict


class Logged(TypedDict):
    log: Annotated[list[str], operator.add]


def _logging(graph: Any, name: str) -> Any:
    builder = graph.StateGraph(Logged)
    builder.add_node(name, lambda state: {"log": [name]})
    builder.add_edge(graph.START, name)
    return builder


def build_nested_durability(prefix: str) -> Any:
    """`outer` then `sub`, a subgraph of two steps of its own."""
    graph = importlib.import_module(f"{prefix}.graph")
    saver = importlib.import_module(f"{prefix}.checkpoint.memory").InMemorySaver()
    inner = _logging(graph, "inner")
    inner.add_node("inner_two", lambda state: {"log": ["inner_two"]})
    inner.add_edge("inner", "inner_two")
    outer = _logging(graph, "outer")
    outer.add_node("sub", inner.compile())
    outer.add_edge("outer", "sub")
    return outer.compile(checkpointer=saver, name="nested_durability")
