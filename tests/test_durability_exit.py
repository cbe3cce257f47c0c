"""`durability="exit"` against LangGraph: a run lists only the checkpoint it ends at in its
thread's history, and a subgraph run in a task's namespace lists none once it is done (each
step is still saved, unlisted, so a crash loses nothing). Compared per namespace that the
run's "checkpoints" events name, with "sync" as the control, on the embedded default here and
on a real cluster in tests/test_differential_cluster.py (test_durability_on_a_cluster)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")

from tests.differential.api import REFERENCE  # noqa: E402
from tests.graphs.durability_graphs import (  # noqa: E402
    build_breakpoint_subgraph,
    build_exit_resume,
    build_nested_durability,
)


def histories(prefix: str, durability: str, cluster: str | None = None,
              thread: str = "d", invoked: bool = False) -> list[tuple[int, int, Any]]:
    """For each namespace a run's checkpoint events name (by depth): how many checkpoints its
    history lists, and the state of the newest (`invoked`: the subgraph is invoked inside a
    node, which hands its durability on as a graph node does)."""
    graph = build_nested_durability(prefix, invoked)
    graph = graph.with_cluster(cluster) if cluster else graph
    thread = f"{thread}-{durability}{'-invoked' if invoked else ''}"
    events = graph.stream({"log": []}, {"configurable": {"thread_id": thread}},
                          durability=durability, subgraphs=True, stream_mode="checkpoints")
    namespaces = list(dict.fromkeys(ns for ns, _ in events))
    shown = []
    for ns in namespaces:
        listed = list(graph.get_state_history(
            {"configurable": {"thread_id": thread, "checkpoint_ns": "|".join(ns)}}))
        shown.append((len(ns), len(listed), listed[0].values if listed else None))
    return shown


@pytest.mark.parametrize("invoked", [False, True], ids=["node", "invoked"])
@pytest.mark.parametrize("durability", ["exit", "sync"])
def test_histories_are_langgraphs(durability: str, invoked: bool) -> None:
    expected = histories(REFERENCE, durability, invoked=invoked)
    assert [depth for depth, _, _ in expected] == [0, 1]
    assert histories("arqgraph", durability, invoked=invoked) == expected


def resumed_history(prefix: str, durability: str, cluster: str | None = None,
                    thread: str = "r") -> list[tuple[Any, ...]]:
    """The history after a step stopped at a question and resumed: with "exit", LangGraph keeps
    what the first run saved at its exit (`done`'s result, the question) in the stopped
    step's checkpoint, and nothing of what the resumed run did there (`asks`'s answer)."""
    graph = build_exit_resume(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    command = importlib.import_module(f"{prefix}.types").Command
    config = {"configurable": {"thread_id": f"{thread}-{durability}"}}
    graph.invoke({"log": []}, config, durability=durability)
    graph.invoke(command(resume="yes"), config, durability=durability)
    return [(s.metadata["step"], s.next, s.values,
             [(t.name, t.result, [i.value for i in t.interrupts]) for t in s.tasks])
            for s in graph.get_state_history(config)]


@pytest.mark.parametrize("durability", ["exit", "sync"])
def test_a_resumed_steps_history_is_langgraphs(durability: str) -> None:
    expected = resumed_history(REFERENCE, durability)
    assert resumed_history("arqgraph", durability) == expected
    stopped = [tasks for step, _, _, tasks in expected if step == 0]
    assert ("asks", None if durability == "exit" else {"log": ["asks:yes"]}, ["ok?"]
            ) in stopped[0]


def resumed_subgraph_history(prefix: str, durability: str, cluster: str | None = None,
                             thread: str = "s") -> list[tuple[Any, ...]]:
    """The history of a subgraph stopped at a breakpoint, then resumed to its end: with "exit",
    the resumed subgraph saves nothing at its end, so its stopped step shows no result of the
    task that ran there after the resume, as in LangGraph."""
    graph = build_breakpoint_subgraph(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    config = {"configurable": {"thread_id": f"{thread}-{durability}"}}
    graph.invoke({"log": []}, config, durability=durability)
    inner = graph.get_state(config, subgraphs=True).tasks[0].state.config
    graph.invoke(None, config, durability=durability)
    return [(s.metadata["step"], s.next, s.values, [(t.name, t.result) for t in s.tasks])
            for s in graph.get_state_history(inner)]


@pytest.mark.parametrize("durability", ["exit", "sync"])
def test_a_resumed_subgraphs_history_is_langgraphs(durability: str) -> None:
    expected = resumed_subgraph_history(REFERENCE, durability)
    assert resumed_subgraph_history("arqgraph", durability) == expected
    if durability == "exit":
        assert [tasks for *_, tasks in expected] == [[("b", None)]]
