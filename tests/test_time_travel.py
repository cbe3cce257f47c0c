"""Time travel through subgraphs against LangGraph: replaying and forking the root graph from a
subgraph's checkpoint (a config read from `get_state(subgraphs=True)`, one and two levels
down, of stateful subgraphs and of the default kind), and a root replay loading each stateful
subgraph's state as it was before the replay point. The same scenario runs on LangGraph, on
arqgraph embedded and on a real cluster, and must give the same outputs and histories.

The graphs (tests/graphs/time_travel_graphs.py) log each node's work into the state, so a node
that runs again on a replay shows in the values.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import ArqProcesses, RedisServer
from tests.differential.api import REFERENCE, Api
from tests.differential.pool import served_pool
from tests.graphs import time_travel_graphs as graphs

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")

SPEC = "tests.graphs.time_travel_graphs:GRAPHS"
DATABASE = 11  # a database of its own on the session's redis-server

Scenario = Callable[[Api, Any, dict[str, Any]], list[Any]]


def shown(value: Any) -> Any:
    """`value` as plain data, comparable across libraries: interrupts by their question."""
    if isinstance(value, dict):
        return {k: shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return [shown(v) for v in value]
    if type(value).__name__ == "Interrupt":
        return ("interrupt", value.value)
    return value


def history(graph: Any, config: dict[str, Any]) -> list[Any]:
    return [(s.metadata["source"], s.next, s.values) for s in graph.get_state_history(config)]


def task_state(graph: Any, config: dict[str, Any], depth: int = 1) -> dict[str, Any]:
    """The config of the subgraph state `depth` levels down the thread's first task."""
    state = graph.get_state(config, subgraphs=True)
    for _ in range(depth):
        state = state.tasks[0].state
    return dict(state.config)


def two_asks(api: Api, graph: Any, config: dict[str, Any]) -> list[Any]:
    out = [graph.invoke({"log": []}, config)]
    first = task_state(graph, config)
    out.append(sorted(first["configurable"]["checkpoint_map"]))
    out.append(graph.invoke(api.Command(resume="a1"), config))
    second = task_state(graph, config)
    out.append(graph.invoke(api.Command(resume="a2"), config))
    out.append(graph.invoke(None, first))  # back to ask_1: step_a does not run again
    out.append(graph.invoke(api.Command(resume="n1"), config))
    out.append(graph.invoke(api.Command(resume="n2"), config))
    out.append(history(graph, config))
    out.append(graph.invoke(None, second))  # back to ask_2
    fork = graph.update_state(first, {"log": ["forked"]})
    out.append(graph.invoke(None, fork))
    out.append(graph.invoke(api.Command(resume="f1"), config))
    return out


def three_levels(api: Api, graph: Any, config: dict[str, Any]) -> list[Any]:
    out = [graph.invoke({"log": []}, config),
           graph.invoke(api.Command(resume="p"), config)]
    inner = task_state(graph, config, depth=2)
    out.append(sorted(inner["configurable"]["checkpoint_map"]))
    out.append(graph.invoke(api.Command(resume="a1"), config))
    out.append(graph.invoke(api.Command(resume="a2"), config))
    out.append(graph.invoke(None, inner))  # the innermost subgraph back at ask_1
    out.append(graph.invoke(api.Command(resume="again"), config))
    fork = graph.update_state(inner, {"log": ["forked"]})
    out.append(graph.invoke(None, fork))
    out.append(history(graph, config))
    return out


def parallel_asks(api: Api, graph: Any, config: dict[str, Any]) -> list[Any]:
    asked = graph.invoke({"log": []}, config)
    out: list[Any] = [sorted(i.value for i in asked["__interrupt__"])]
    first = next(i for i in asked["__interrupt__"] if i.value == "a?")
    out.append(graph.invoke(api.Command(resume={first.id: "yes"}), config))
    replayed = graph.invoke(None, task_state(graph, config))  # both asked again
    out.append(sorted(i.value for i in replayed["__interrupt__"]))
    return out


def accumulating(api: Api, graph: Any, config: dict[str, Any]) -> list[Any]:
    out = [graph.invoke({"results": []}, config), graph.invoke({"results": []}, config)]
    before_sub = [s.config for s in graph.get_state_history(config) if s.next == ("sub_node",)]
    out.append(graph.invoke(None, before_sub[0]))  # the 2nd call's: the sub kept the 1st's
    out.append(graph.invoke(None, before_sub[-1]))  # the 1st call's: the sub kept nothing
    fork = graph.update_state(before_sub[0], {"results": ["edited"]})
    out.append(graph.invoke(None, fork))
    out.append(history(graph, config))
    return out


def plain_subgraph(api: Api, graph: Any, config: dict[str, Any]) -> list[Any]:
    out = [graph.invoke({"log": []}, config)]
    first = task_state(graph, config)
    out.append(graph.invoke(api.Command(resume="a1"), config))
    out.append(graph.invoke(None, first))  # the root's latest, by id: a fork of it
    out.append(graph.invoke(api.Command(resume="b1"), config))
    out.append(graph.invoke(api.Command(resume="b2"), config))
    out.append(history(graph, config))
    return out


SCENARIOS: dict[str, Scenario] = {"two_asks": two_asks, "three_levels": three_levels,
                                  "parallel_asks": parallel_asks, "accumulating": accumulating,
                                  "plain_subgraph": plain_subgraph}


def run(name: str, api: Api, graph: Any) -> list[Any]:
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    return shown(SCENARIOS[name](api, graph, config))


def reference(name: str) -> list[Any]:
    api = Api(REFERENCE)
    return run(name, api, graphs.BUILDERS[name](api, api.InMemorySaver()))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_time_travel_embedded_matches_langgraph(name: str) -> None:
    api = Api("arqgraph")
    assert run(name, api, graphs.BUILDERS[name](api, api.InMemorySaver())) == reference(name)


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[str]:
    with served_pool(redis_server, arq_processes, SPEC, DATABASE, "tt") as url:
        yield url


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_time_travel_on_a_cluster_matches_langgraph(name: str, cluster: str) -> None:
    api = Api("arqgraph")  # (with a saver: as in LangGraph, a graph without one keeps no thread)
    graph = graphs.BUILDERS[name](api, api.InMemorySaver()).with_cluster(cluster)
    assert run(name, api, graph) == reference(name)


def test_a_config_without_a_root_entry_runs_the_root_from_its_latest() -> None:
    """A subgraph's namespace with no `checkpoint_map` runs the root graph where its thread
    is, as LangGraph (not the subgraph's nodes against the root)."""
    def scenario(api: Api, graph: Any, config: dict[str, Any]) -> list[Any]:
        graph.invoke({"log": []}, config)
        bare = {"configurable": {**config["configurable"], "checkpoint_ns": "executor"}}
        return [graph.invoke(api.Command(resume="x"), bare)]

    SCENARIOS["bare_namespace"] = scenario
    try:
        outcomes = [run("bare_namespace", api, graphs.two_asks(api, api.InMemorySaver()))
                    for api in (Api(REFERENCE), Api("arqgraph"))]
    finally:
        del SCENARIOS["bare_namespace"]
    assert outcomes[1] == outcomes[0]
    assert outcomes[0] == [{"log": [], "__interrupt__": [("interrupt", "ask_2?")]}]
