"""Class-based nodes, differentially: the graph of tests/graphs/class_node_graphs.py runs on
LangGraph with act-operator's own `BaseNode`/`AsyncBaseNode` (the seed documents' style), on
arqgraph's embedded default and on a real cluster with `arqgraph.nodes`. Compared: what every
node sees (its name and `verbose`, constructor keyword arguments, `get_thread_id`, `get_tags`,
`langgraph_step`/`_node`/`_triggers`/`_path`/`_checkpoint_ns` and the rest of its metadata, the
runtime's context, what `**kwargs` receives), the DEBUG lines of verbose nodes (in process), and
threads run twice: afresh without a checkpointer, continued with one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from tests.differential.pool import pool_fixture
from tests.graphs.class_node_graphs import act_operator_base, bases, build

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")
pytest.importorskip("act_operator", reason="the seed style's reference is a test dependency")

SPEC = "tests.graphs.class_node_graphs:GRAPHS"
DATABASE = 13  # a database of its own on the session's redis-server
LOGGERS = ("act_operator_base_node", "arqgraph.nodes")

cluster = pool_fixture(SPEC, DATABASE, "class-nodes")

CONFIGS = [
    pytest.param(None, id="no-config"),
    pytest.param({"configurable": {"thread_id": "t-1"}, "tags": ["seeds"]}, id="thread-and-tags"),
    pytest.param({"configurable": {"thread_id": "t-2"}, "metadata": {"user": "u"}}, id="metadata"),
]


def saver(prefix: str) -> Any:
    if prefix == "langgraph":
        from langgraph.checkpoint.memory import InMemorySaver
        return InMemorySaver()
    from arqgraph.checkpoint.memory import InMemorySaver as Saver
    return Saver()


def twice(graph: Any, config: dict[str, Any] | None) -> list[Any]:
    """Two runs on the same config: the second continues the thread only with a checkpointer."""

    async def runs() -> list[Any]:
        return [await graph.ainvoke({"query": "q"}, config, context={"who": "ctx"})
                for _ in range(2)]

    return asyncio.run(runs())


def logged(run: Callable[[], Any], caplog: pytest.LogCaptureFixture) -> tuple[Any, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        result = run()
    return result, [r.getMessage() for r in caplog.records if r.name in LOGGERS]


@pytest.mark.parametrize(("config", "saved"), [  # (a checkpointer needs a thread id)
    pytest.param(c.values[0], saved, id=f"{c.id}-{'checkpointer' if saved else 'none'}")
    for c in CONFIGS for saved in (False, True) if not (saved and c.values[0] is None)])
def test_embedded_matches_langgraph_and_act_operator(
    config: dict[str, Any] | None, saved: bool, caplog: pytest.LogCaptureFixture
) -> None:
    graphs = {p: build(p, saver(p) if saved else None) for p in ("langgraph", "arqgraph")}
    expected, expected_logs = logged(lambda: twice(graphs["langgraph"], config), caplog)
    actual, actual_logs = logged(lambda: twice(graphs["arqgraph"], config), caplog)
    assert actual == expected
    assert actual_logs == expected_logs and expected_logs


def test_cluster_matches_langgraph(cluster: str) -> None:
    """Every config, without and with a checkpointer, through the one cluster."""
    for saved in (False, True):
        for param in CONFIGS:
            config = param.values[0]
            if saved and config is None:
                continue
            expected = twice(build("langgraph", saver("langgraph") if saved else None), config)
            graph = build("arqgraph", saver("arqgraph") if saved else None).with_cluster(cluster)
            assert twice(graph, config) == expected, (saved, param.id)


def test_the_comparison_sees_what_it_claims() -> None:
    """Guards against vacuity: the reference shows the metadata, helpers and threads compared."""
    plain = twice(build("langgraph"), {"configurable": {"thread_id": "t"}, "tags": ["x"]})
    saved = twice(build("langgraph", saver("langgraph")), {"configurable": {"thread_id": "t"}})
    assert plain[1]["runs"] == 1 and saved[1]["runs"] == 2
    start, *_, finish = plain[0]["seen"]
    assert start["thread"] == "t" and start["tags"] == ["x"] and start["verbose"] is True
    assert start["metadata"]["langgraph_step"] == 1 and finish["metadata"]["langgraph_step"] == 3
    assert "join:fetch+rank:finish" in finish["metadata"]["langgraph_triggers"]
    each = [s for s in plain[0]["seen"] if s["name"] == "Each"]
    assert [e["metadata"]["langgraph_path"][0] for e in each] == ["__pregel_push"] * 2
    assert plain[0]["inner"][0]["ns"] == [["sub", 1], ["inner", 1]]


def test_constructors_checks_and_helpers_match_act_operator() -> None:
    def shown(base: Any) -> list[Any]:
        class Node(base):  # type: ignore[misc, valid-type]
            def execute(self, state):  # type: ignore[no-untyped-def]
                return {"got": sorted(state)}

        node = Node(verbose=1, other="x")
        return [node.name, node.verbose, Node().verbose, node.get_thread_id(None),
                node.get_thread_id({"configurable": {"thread_id": "a"}}),
                node.get_thread_id({"configurable": {}}), node.get_tags({}),
                node.get_tags({"tags": ["t"]}), node({"k": 1}), refused(lambda: Node(1)),
                refused(lambda: node(None)),  # (execute fails: the same error reaches the caller)
                *(refused(lambda source=source: define(base, source)) for source in SHAPES)]

    reference, ours = bases("langgraph"), bases("arqgraph")
    assert shown(ours[0]) == shown(reference[0])
    assert act_operator_base().LOGGER.name == "act_operator_base_node"


SHAPES = ["def execute(self, state, config, runtime): return {}",
          "async def execute(self, state): return {}",
          "def execute(self, data): return {}",
          "def execute(self, state, store): return {}",
          "x = 1"]


def define(base: Any, source: str) -> type:
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - builds the class body under test
    return type("Shape", (base,), {k: v for k, v in namespace.items() if k != "__builtins__"})


def refused(make: Callable[[], Any]) -> str | None:
    """The type of error `make` raises, or None."""
    try:
        make()
    except Exception as exc:
        return type(exc).__name__
    return None
