"""`get_graph()` draws a graph as LangGraph draws it: the same nodes, edges, labels and node
metadata, so `draw_mermaid()` gives the same text, with LangChain's Graph (langchain-core
installed) and with arqgraph's own DrawableGraph (without it)."""

from __future__ import annotations

import operator
import sys
from typing import Annotated, Any, Literal, TypedDict

import pytest

from tests.differential.api import REFERENCE, Api


class S(TypedDict):
    x: int
    log: Annotated[list[str], operator.add]


def _node(state: S) -> dict[str, Any]:
    return {}


def _go_b(state: S) -> str:
    return "b"


def _literal(state: S) -> Literal["c", "__end__"]:
    return "c"


def build(api: Api, shape: str) -> Any:
    g = api.StateGraph(S)
    names = {"linear": "ab", "branches": "abcd", "mapped": "abcd", "join": "abcd",
             "command": "bc", "fanout_list": "abc", "entry": "ab", "defer": "abcd",
             "defer_uneven": "abcd", "end_edges": "abc"}
    for name in names.get(shape, ""):
        g.add_node(name, _node, defer=shape.startswith("defer") and name == "d")
    if shape == "linear":
        g.add_edge(api.START, "a")
        g.add_edge("a", "b")
    elif shape == "branches":  # undeclared targets draw nothing: a goes to END
        g.add_edge(api.START, "a")
        g.add_conditional_edges("a", _go_b)
        g.add_conditional_edges("b", _literal)
        g.add_conditional_edges("c", _go_b, {"go": "d", "stop": api.END})
        return g.compile(interrupt_before=["b"], interrupt_after=["b", "c"])
    elif shape == "mapped":
        g.add_edge(api.START, "a")
        g.add_conditional_edges("a", _go_b, {"go": "b", "alt": "c", "done": api.END})
        g.add_edge("b", "d")
        g.add_edge("c", "d")
    elif shape == "loop":
        g.add_node("human", _node)
        g.add_node("agent", _node)
        g.add_edge(api.START, "human")
        g.add_edge("human", "agent")
        g.add_edge("agent", "human")
    elif shape == "join":
        g.add_edge(api.START, "a")
        g.add_edge("a", "b")
        g.add_edge("a", "c")
        g.add_edge(["b", "c"], "d")
    elif shape == "command":
        def a(state: S) -> api.Command[Literal["b", "c"]]:  # type: ignore[name-defined]
            return api.Command(goto="b")

        g.add_node("a", a, metadata={"kind": "router"})
        g.add_edge(api.START, "a")
        g.add_edge("b", api.END)
    elif shape == "fanout_list":
        g.add_edge(api.START, "a")
        g.add_conditional_edges("a", lambda s: ["b", "c"], ["b", "c"])
    elif shape == "entry":
        g.set_conditional_entry_point(_go_b, {"x": "a", "y": "b"})
        g.add_edge("a", "b")
    elif shape == "defer":
        g.add_edge(api.START, "a")
        for src, dst in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")):
            g.add_edge(src, dst)
    elif shape == "defer_uneven":  # d waits for c, which ends a longer branch: drawn after it
        g.add_edge(api.START, "a")
        for src, dst in (("a", "b"), ("b", "c"), ("a", "d"), ("b", "d"), ("d", api.END)):
            g.add_edge(src, dst)
    elif shape == "end_edges":  # plain edges to END: drawn for the nodes that end, last
        g.add_edge(api.START, "a")
        for src, dst in (("a", "b"), ("a", "c"), ("a", api.END), ("c", api.END)):
            g.add_edge(src, dst)
    return g.compile()


SHAPES = ["linear", "branches", "mapped", "loop", "join", "command", "fanout_list", "entry",
          "defer", "defer_uneven", "end_edges"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("styles", [True, False], ids=["styled", "plain"])
def test_mermaid_is_langgraphs(shape: str, styles: bool) -> None:
    expected = build(Api(REFERENCE), shape).get_graph().draw_mermaid(with_styles=styles)
    assert build(Api("arqgraph"), shape).get_graph().draw_mermaid(with_styles=styles) == expected


@pytest.mark.parametrize("shape", SHAPES)
def test_without_langchain_the_same_mermaid(shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = build(Api(REFERENCE), shape).get_graph().draw_mermaid()
    monkeypatch.setitem(sys.modules, "langchain_core.runnables.graph", None)
    drawn = build(Api("arqgraph"), shape).get_graph()
    assert type(drawn).__name__ == "DrawableGraph"
    assert drawn.draw_mermaid() == expected
    edges = {(e["source"], e["target"]) for e in drawn.to_json()["edges"]}
    assert ("__start__", "a" if shape not in ("loop", "entry") else
            "human" if shape == "loop" else "a") in edges
    with pytest.raises(ImportError, match="langchain"):
        drawn.draw_ascii()


def test_json_is_langgraphs() -> None:
    """Nodes, with what runs each named as LangGraph names it, and edges."""
    for shape in SHAPES:
        theirs = build(Api(REFERENCE), shape).get_graph().to_json()
        ours = build(Api("arqgraph"), shape).get_graph().to_json()
        assert ours == theirs, shape


def _middle(api: Api, tag: str) -> Any:
    from langchain_core.runnables import RunnableLambda

    inner = api.StateGraph(S)
    inner.add_node("slow", _node)
    inner.add_node("fast", _node)
    inner.set_conditional_entry_point(_go_b, {"x": "slow", "y": "fast"})
    middle = api.StateGraph(S)
    middle.add_node("first", RunnableLambda(_node))
    middle.add_node(f"inner_{tag}", inner.compile())
    middle.add_edge(api.START, "first")
    middle.add_edge("first", f"inner_{tag}")
    return middle.compile()


def nested(api: Api) -> Any:
    """Three levels: a graph as a node, a node that invokes a graph, a LangChain runnable as a
    node, and a conditional entry into the innermost graph."""
    called = _middle(api, "called")

    def calls_middle(state: S) -> Any:
        return called.invoke(state)

    outer = api.StateGraph(S)
    outer.add_node("a", _node)
    outer.add_node("middle", _middle(api, "node"))
    outer.add_node("calls", calls_middle)
    outer.add_edge(api.START, "a")
    outer.add_conditional_edges("a", _literal_middle, {"m": "middle", "c": "calls"})
    outer.add_edge("middle", api.END)
    return outer.compile()


def _literal_middle(state: S) -> str:
    return "m"


@pytest.mark.parametrize("xray", [False, True, 1, 2])
def test_xray_draws_inner_graphs_as_langgraph(xray: int | bool) -> None:
    """`get_graph(xray=...)` puts each graph a node runs in its place, to the depth asked."""
    theirs = nested(Api(REFERENCE)).get_graph(xray=xray)
    ours = nested(Api("arqgraph")).get_graph(xray=xray)
    assert ours.to_json() == theirs.to_json()
    assert ours.draw_mermaid() == theirs.draw_mermaid()
    if xray:
        assert any(":" in node for node in ours.nodes)


def test_xray_without_langchain_draws_the_same_json(monkeypatch: pytest.MonkeyPatch) -> None:
    theirs = nested(Api(REFERENCE)).get_graph(xray=True).to_json()
    graph = nested(Api("arqgraph"))
    monkeypatch.setitem(sys.modules, "langchain_core.runnables.graph", None)
    drawn = graph.get_graph(xray=True)
    assert type(drawn).__name__ == "DrawableGraph"
    ours = drawn.to_json()
    assert ours["edges"] == theirs["edges"]
    assert [n["id"] for n in ours["nodes"]] == [n["id"] for n in theirs["nodes"]]
    assert ([n["data"]["id"] for n in ours["nodes"] if n.get("data") and ":" not in n["id"]]
            == [n["data"]["id"] for n in theirs["nodes"]
                if n.get("data") and ":" not in n["id"]])


def _with_destinations(api: Api, destinations: Any) -> Any:
    """A node (a subgraph that routes its parent with Command.PARENT) whose targets only its
    `destinations=` tell: they are drawn as its conditional edges, labelled by a dict."""
    def route(state: S) -> Any:
        return api.Command(goto="b" if state["log"] else "c", graph=api.Command.PARENT)

    inner = api.StateGraph(S)
    inner.add_node("route", route)
    inner.add_edge(api.START, "route")
    g = api.StateGraph(S)
    g.add_node("child", inner.compile(), destinations=destinations)
    g.add_node("b", _node)
    g.add_node("c", _node)
    g.add_edge(api.START, "child")
    graph = g.compile()
    drawing = graph.get_graph()
    return (graph.invoke({"log": []}),
            sorted((e.source, e.target, e.data, e.conditional) for e in drawing.edges),
            drawing.draw_mermaid())


@pytest.mark.parametrize("destinations", [("b", "c"), {"b": "yes", "c": "no"}])
def test_node_destinations_are_drawn_as_langgraph_draws_them(destinations: Any) -> None:
    expected = _with_destinations(Api(REFERENCE), destinations)
    assert _with_destinations(Api("arqgraph"), destinations) == expected
