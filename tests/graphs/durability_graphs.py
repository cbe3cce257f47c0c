"""A graph whose node runs a subgraph, built by library prefix ("langgraph" or "arqgraph") so
the same code builds the reference and the candidate, embedded or served by a cluster
(`tests.differential.served:GRAPHS`)."""

from __future__ import annotations

import importlib
import operator
from typing import Annotated, Any, TypedDict


class Logged(TypedDict):
    log: Annotated[list[str], operator.add]


class Edited(Logged, total=False):
    text: str


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


def build_breakpoint_subgraph(prefix: str) -> Any:
    """`sub`, a subgraph that stops before its second node `b` (a breakpoint)."""
    graph = importlib.import_module(f"{prefix}.graph")
    saver = importlib.import_module(f"{prefix}.checkpoint.memory").InMemorySaver()
    inner = graph.StateGraph(Edited)
    inner.add_node("a", lambda state: {"log": ["a"], "text": "sf"})
    inner.add_node("b", lambda state: {"log": [f"b:{state['text']}"]})
    inner.add_edge(graph.START, "a")
    inner.add_edge("a", "b")
    outer = graph.StateGraph(Edited)
    outer.add_node("sub", inner.compile(interrupt_before=["b"]))
    outer.add_edge(graph.START, "sub")
    return outer.compile(checkpointer=saver, name="breakpoint_subgraph")


def build_subgraph_then_question(prefix: str) -> Any:
    """`node` invokes a subgraph of one node, then asks a question."""
    graph = importlib.import_module(f"{prefix}.graph")
    types = importlib.import_module(f"{prefix}.types")
    saver = importlib.import_module(f"{prefix}.checkpoint.memory").InMemorySaver()
    sub = _logging(graph, "a").compile()

    def node(state: Logged) -> dict[str, list[str]]:
        out = sub.invoke({"log": ["in"]})
        return {"log": [f"node {out['log']} {types.interrupt('q')}"]}

    outer = graph.StateGraph(Logged)
    outer.add_node("node", node)
    outer.add_edge(graph.START, "node")
    return outer.compile(checkpointer=saver, name="subgraph_then_question")


def build_stopped_handler(prefix: str) -> Any:
    """`fails` fails and its error handler waits; `sibling` fails once the handler runs, which
    stops the handler with the run. The folder the input names tells each call (a line in
    `calls`) and, once `resumed` exists, lets every node go through."""
    import asyncio
    from pathlib import Path

    graph = importlib.import_module(f"{prefix}.graph")
    errors = importlib.import_module(f"{prefix}.errors")
    saver = importlib.import_module(f"{prefix}.checkpoint.memory").InMemorySaver()

    class Gated(Logged):
        folder: str

    def told(state: Gated, name: str) -> bool:
        """Note the call; whether the run was resumed."""
        with open(Path(state["folder"]) / "calls", "a") as calls:
            calls.write(name + "\n")
        return (Path(state["folder"]) / "resumed").exists()

    async def fails(state: Gated) -> dict[str, list[str]]:
        told(state, "fails")
        raise RuntimeError("boom")

    async def handler(state: Gated, error: Any) -> dict[str, list[str]]:
        if not told(state, "handler"):
            (Path(state["folder"]) / "handling").touch()
            await asyncio.sleep(60)  # (until the sibling's failure stops it)
        return {"log": ["recovered"]}

    async def sibling(state: Gated) -> dict[str, list[str]]:
        if not told(state, "sibling"):
            while not (Path(state["folder"]) / "handling").exists():
                await asyncio.sleep(0.01)
            raise RuntimeError("sibling failed")
        return {"log": ["sibling"]}

    handler.__annotations__["error"] = errors.NodeError  # (how both libraries find it)
    builder = graph.StateGraph(Gated)
    builder.add_node("fails", fails, error_handler=handler)
    builder.add_node("sibling", sibling)
    builder.add_edge(graph.START, "fails")
    builder.add_edge(graph.START, "sibling")
    return builder.compile(checkpointer=saver, name="stopped_handler")
