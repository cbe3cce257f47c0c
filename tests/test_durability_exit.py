"""`durability="exit"` against LangGraph: a run lists only the checkpoint it ends at in its
thread's history, and a subgraph run in a task's namespace lists none once it is done (each
step is still saved, unlisted, so a crash loses nothing). Compared per namespace that the
run's "checkpoints" events name, with "sync" as the control, on the embedded default here and
on a real cluster in tests/test_differential_cluster.py (test_durability_on_a_cluster)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")

from tests.differential.api import REFERENCE  # noqa: E402
from tests.graphs.durability_graphs import build_nested_durability  # noqa: E402


def histories(prefix: str, durability: str, cluster: str | None = None,
              thread: str = "d") -> list[tuple[int, int, Any]]:
    """For each namespace a run's checkpoint events name (by depth): how many checkpoints its
    history lists, and the state of the newest."""
    graph = build_nested_durability(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    thread = f"{thread}-{durability}"
    events = graph.stream({"log": []}, {"configurable": {"thread_id": thread}},
                          durability=durability, subgraphs=True, stream_mode="checkpoints")
    namespaces = list(dict.fromkeys(ns for ns, _ in events))
    shown = []
    for ns in namespaces:
        listed = list(graph.get_state_history(
            {"configurable": {"thread_id": thread, "checkpoint_ns": "|".join(ns)}}))
        shown.append((len(ns), len(listed), listed[0].values if listed else None))
    return shown


@pytest.mark.parametrize("durability", ["exit", "sync"])
def test_histories_are_langgraphs(durability: str) -> None:
    expected = histories(REFERENCE, durability)
    assert [depth for depth, _, _ in expected] == [0, 1]
    assert histories("arqgraph", durability) == expected
