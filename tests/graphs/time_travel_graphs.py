"""Graphs with subgraphs to travel back in time through (tests/test_time_travel.py), built
through an `Api` so that the same builder makes LangGraph's graph and arqgraph's.

Each node logs what it did into the state, so that which nodes ran again on a replay shows in
the values, in one process or on a cluster. `GRAPHS`: arqgraph's, for a cluster to serve.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from tests.differential.api import Api


class S(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


class Parent(TypedDict, total=False):
    results: Annotated[list[str], operator.add]


class Sub(TypedDict, total=False):
    results: Annotated[list[str], operator.add]
    value: Annotated[list[str], operator.add]


def _asker(api: Api, name: str) -> Callable[[S], dict[str, Any]]:
    def node(state: S) -> dict[str, Any]:
        return {"log": [f"{name}:{api.interrupt(f'{name}?')}"]}

    return node


def _chain(api: Api, steps: list[tuple[str, Any]], **compile: Any) -> Any:
    """START -> each of `steps` (name, node) in turn."""
    g = api.StateGraph(S)
    previous = api.START
    for name, node in steps:
        g.add_node(name, node)
        g.add_edge(previous, name)
        previous = name
    return g.compile(**compile)


def _top(api: Api, name: str, checkpointer: Any) -> dict[str, Any]:
    """The compile options of a root graph: a saver (the caller's graph needs one to keep its
    thread, on a cluster too; the served graph's does not matter)."""
    return {"name": name, "checkpointer": checkpointer}


def two_asks(api: Api, checkpointer: Any = None) -> Any:
    """START -> executor, a stateful subgraph: step_a -> ask_1 -> ask_2."""
    executor = _chain(api, [("step_a", lambda s: {"log": ["step_a"]}),
                            ("ask_1", _asker(api, "ask_1")), ("ask_2", _asker(api, "ask_2"))],
                      checkpointer=True, name="tt_executor")
    return _chain(api, [("executor", executor)], **_top(api, "tt_two_asks", checkpointer))


def three_levels(api: Api, checkpointer: Any = None) -> Any:
    """START -> outer (stateful: pre -> inner) -> inner (stateful: step_a -> ask_1 -> ask_2)."""
    inner = _chain(api, [("step_a", lambda s: {"log": ["step_a"]}),
                         ("ask_1", _asker(api, "ask_1")), ("ask_2", _asker(api, "ask_2"))],
                   checkpointer=True, name="tt_inner")
    outer = _chain(api, [("pre", _asker(api, "pre")), ("inner", inner)],
                   checkpointer=True, name="tt_outer")
    return _chain(api, [("outer", outer)], **_top(api, "tt_three_levels", checkpointer))


def parallel_asks(api: Api, checkpointer: Any = None) -> Any:
    """START -> sub, a stateful subgraph whose a and b ask at once."""
    g = api.StateGraph(S)
    g.add_node("a", _asker(api, "a"))
    g.add_node("b", _asker(api, "b"))
    g.add_edge(api.START, "a")
    g.add_edge(api.START, "b")
    sub = g.compile(checkpointer=True, name="tt_parallel_sub")
    return _chain(api, [("sub", sub)], **_top(api, "tt_parallel_asks", checkpointer))


def accumulating(api: Api, checkpointer: Any = None) -> Any:
    """START -> parent_node -> sub_node, a stateful subgraph that says how much it kept."""
    def sub_step(state: Sub) -> dict[str, Any]:
        return {"value": ["s"], "results": [f"sub kept {len(state.get('value', []))}"]}

    sub = api.StateGraph(Sub)
    sub.add_node("sub_step", sub_step)
    sub.add_edge(api.START, "sub_step")
    g = api.StateGraph(Parent)
    g.add_node("parent_node", lambda state: {"results": ["p"]})
    g.add_node("sub_node", sub.compile(checkpointer=True, name="tt_accumulating_sub"))
    g.add_edge(api.START, "parent_node")
    g.add_edge("parent_node", "sub_node")
    return g.compile(**_top(api, "tt_accumulating", checkpointer))


def plain_subgraph(api: Api, checkpointer: Any = None) -> Any:
    """START -> pre -> executor, a subgraph of the default kind (a thread per call):
    step_a -> ask_1 -> ask_2."""
    executor = _chain(api, [("step_a", lambda s: {"log": ["step_a"]}),
                            ("ask_1", _asker(api, "ask_1")), ("ask_2", _asker(api, "ask_2"))],
                      name="tt_plain_executor")
    return _chain(api, [("pre", lambda s: {"log": ["pre"]}), ("executor", executor)],
                  **_top(api, "tt_plain_subgraph", checkpointer))


BUILDERS = {"two_asks": two_asks, "three_levels": three_levels,
            "parallel_asks": parallel_asks, "accumulating": accumulating,
            "plain_subgraph": plain_subgraph}
GRAPHS = [build(Api("arqgraph")) for build in BUILDERS.values()]
