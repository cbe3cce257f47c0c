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


def build_nested_durability(prefix: str, invoked: bool = False) -> Any:
    """`outer` then `sub`, a subgraph of two steps of its own; with `invoked`, `calls`, a
    node that invokes it."""
    graph = importlib.import_module(f"{prefix}.graph")
    saver = importlib.import_module(f"{prefix}.checkpoint.memory").InMemorySaver()
    inner = _logging(graph, "inner")
    inner.add_node("inner_two", lambda state: {"log": ["inner_two"]})
    inner.add_edge("inner", "inner_two")
    sub = inner.compile()
    outer = _logging(graph, "outer")
    if invoked:
        outer.add_node("calls", lambda state: sub.invoke({"log": []}))
    else:
        outer.add_node("sub", sub)
    outer.add_edge("outer", "calls" if invoked else "sub")
    name = "invoked_durability" if invoked else "nested_durability"
    return outer.compile(checkpointer=saver, name=name)


def build_exit_resume(prefix: str) -> Any:
    """`done` and `asks` at once, then `last`: `asks` stops at a question, to be resumed."""
    graph = importlib.import_module(f"{prefix}.graph")
    types = importlib.import_module(f"{prefix}.types")
    saver = importlib.import_module(f"{prefix}.checkpoint.memory").InMemorySaver()

    def asks(state: Logged) -> dict[str, list[str]]:
        return {"log": [f"asks:{types.interrupt('ok?')}"]}

    builder = graph.StateGraph(Logged)
    builder.add_node("done", lambda state: {"log": ["done"]})
    builder.add_node("asks", asks)
    builder.add_node("last", lambda state: {"log": ["last"]})
    builder.add_edge(graph.START, "done")
    builder.add_edge(graph.START, "asks")
    builder.add_edge(["done", "asks"], "last")
    return builder.compile(checkpointer=saver, name="exit_resume")
