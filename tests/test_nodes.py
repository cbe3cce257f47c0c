"""Class-based nodes (`arqgraph.nodes`) and duck-typed callable objects, on the embedded default.
(The same graphs run on a cluster of processes in tests/test_cluster.py.)"""

from __future__ import annotations

import operator
import re
from typing import Annotated, Any, TypedDict

import pytest

from arqgraph.checkpoint.memory import InMemorySaver
from arqgraph.graph import END, START, StateGraph
from arqgraph.nodes import AsyncBaseNode, BaseNode
from tests.graphs.cluster_graphs import class_nodes


class State(TypedDict, total=False):
    query: str
    seen: Annotated[list[str], operator.add]


class Plain(BaseNode):
    def execute(self, state):  # type: ignore[no-untyped-def]
        return {"seen": [f"plain:{state['query']}"]}


class WithConfig(AsyncBaseNode):
    async def execute(self, state, config):  # type: ignore[no-untyped-def]
        return {"seen": [f"thread:{self.get_thread_id(config)}"]}


class WithRuntime(AsyncBaseNode):
    async def execute(self, state, runtime):  # type: ignore[no-untyped-def]
        return {"seen": [f"context:{runtime.context}"]}


class WithBoth(BaseNode):
    def execute(self, state, config, runtime):  # type: ignore[no-untyped-def]
        node = config["metadata"]["langgraph_node"]
        return {"seen": [f"both:{node}:{runtime.context}"]}


class DuckTyped:
    """A project's own base class: only the shape of `__call__` matters."""

    async def __call__(self, state: State, config: Any = None, runtime: Any = None) -> Any:
        return {"seen": [f"duck:{self.get_thread_id(config)}"]}

    @staticmethod
    def get_thread_id(config: Any) -> Any:
        return (config or {}).get("configurable", {}).get("thread_id")


def build() -> Any:
    builder = StateGraph(State)
    builder.add_node("plain", Plain())
    builder.add_node("with_config", WithConfig())
    builder.add_node("with_runtime", WithRuntime())
    builder.add_node("with_both", WithBoth())
    builder.add_node("duck", DuckTyped())
    builder.add_edge(START, "plain")
    for name in ("with_config", "with_runtime", "with_both", "duck"):
        builder.add_edge("plain", name)
        builder.add_edge(name, END)
    return builder.compile(checkpointer=InMemorySaver())


async def test_every_execute_shape_gets_what_it_names() -> None:
    graph = build()
    config = {"configurable": {"thread_id": "t-7"}}
    result = await graph.ainvoke({"query": "q"}, config, context="ctx")
    assert result == {"query": "q", "seen": [  # a step's writes apply in node-name order
        "plain:q", "duck:t-7", "both:with_both:ctx", "thread:t-7", "context:ctx"
    ]}


async def test_execute_must_return_a_dict() -> None:
    class Wrong(AsyncBaseNode):
        async def execute(self, state):  # type: ignore[no-untyped-def]
            return ["not", "a", "dict"]

    builder = StateGraph(State)
    builder.add_node("wrong", Wrong())
    builder.add_edge(START, "wrong")
    message = "Wrong.execute() must return a dict of state updates, got list"
    with pytest.raises(TypeError, match=re.escape(message)):
        await builder.compile().ainvoke({"query": "x"})


@pytest.mark.parametrize(("base", "source", "message"), [
    (BaseNode, "async def execute(self, state): ...", "must be `def execute(...)`"),
    (AsyncBaseNode, "def execute(self, state): ...", "must be `async def execute(...)`"),
    (BaseNode, "def execute(self, data): ...", "must take `state` as its first parameter"),
    (BaseNode, "def execute(self): ...", "must take `state` as its first parameter"),
    (AsyncBaseNode, "async def execute(self, state, store): ...",
     "may take only `config` and `runtime` after `state`"),
])
def test_execute_shape_is_checked_when_the_class_is_defined(
    base: type, source: str, message: str
) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - builds the method under test
    with pytest.raises(TypeError, match=re.escape(message)) as caught:
        type("Broken", (base,), {"execute": namespace["execute"]})
    assert "Broken.execute" in str(caught.value)


def test_helpers_read_the_config() -> None:
    node = Plain()
    assert node.get_thread_id({"configurable": {"thread_id": "t-1"}}) == "t-1"
    assert node.get_thread_id({}) is None and node.get_thread_id(None) is None
    assert node.get_tags({"tags": ["a"]}) == ["a"] and node.get_tags(None) == []


async def test_class_nodes_graph_of_the_cluster_runs_embedded() -> None:
    result = await class_nodes.ainvoke({"query": "cats"}, {"configurable": {"thread_id": "c"}})
    assert result == {"query": "cats", "seen": ["fetch:cats", "rank:c", "duck:2"]}
