"""PocketFlow's behaviours, differentially: every program of tests/graphs/pocketflow_scenarios.py
(PocketFlow's own test scenarios, rewritten, and cookbook programs with a stand-in LLM) runs on
plain PocketFlow in this process, through `flow_graph` on the embedded default, and on a real
cluster (an orchestrator and two workers over a real redis-server, one for the module). Compared:
the returned action, the final shared store, the warnings the caller sees, the files written and
the error raised (type and message; a failed run's partial store stays on the worker).
"""

from __future__ import annotations

import asyncio
import copy
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pocketflow import AsyncNode

from tests.differential.pool import pool_fixture
from tests.graphs.pocketflow_scenarios import BY_NAME, SCENARIOS

SPEC = "tests.graphs.pocketflow_scenarios:GRAPHS"
DATABASE = 12  # a database of its own on the session's redis-server


cluster = pool_fixture(SPEC, DATABASE, "pocketflow")


def outcome(run: Callable[[dict[str, Any]], Any], shared: dict[str, Any],
            out_dir: Path) -> dict[str, Any]:
    """What a caller can observe of one run of a flow."""
    out_dir.mkdir(parents=True)
    store = {**copy.deepcopy(shared), "out_dir": str(out_dir)}
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            action = run(store)
        except Exception as exc:  # compared below: the same error must reach the caller
            action, error = None, (type(exc).__name__, str(exc))
    store["out_dir"] = "<out>"
    files = {p.relative_to(out_dir).as_posix(): p.read_text(encoding="utf-8")
             for p in sorted(out_dir.rglob("*")) if p.is_file()}
    return {"action": action, "shared": None if error else store, "error": error, "files": files,
            "warnings": [(w.category.__name__, str(w.message)) for w in caught]}


def on_pocketflow(name: str, tmp_path: Path) -> dict[str, Any]:
    make, shared = SCENARIOS[name]
    flow = make()
    if isinstance(flow, AsyncNode):
        return outcome(lambda s: asyncio.run(flow.run_async(s)), shared, tmp_path / "pocketflow")
    return outcome(flow.run, shared, tmp_path / "pocketflow")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_embedded_matches_pocketflow(name: str, tmp_path: Path) -> None:
    expected = on_pocketflow(name, tmp_path)
    assert outcome(BY_NAME[name].run, SCENARIOS[name][1], tmp_path / "embedded") == expected


def test_cluster_matches_pocketflow(cluster: str, tmp_path: Path) -> None:
    """Every scenario through the one cluster (a single test: the cluster is shared)."""
    for name in SCENARIOS:
        expected = on_pocketflow(name, tmp_path / name)
        graph = BY_NAME[name].with_cluster(cluster)
        assert outcome(graph.run, SCENARIOS[name][1], tmp_path / name / "cluster") == expected, name


def test_the_scenarios_cover_what_they_claim(tmp_path: Path) -> None:
    """Guards the comparison against vacuity: actions, warnings, files and errors all occur."""
    seen = {name: on_pocketflow(name, tmp_path / name) for name in SCENARIOS}
    assert seen["action_propagation"]["shared"]["trail"][-1] == "path b"
    assert seen["flow_ends_unknown_action"]["action"] == "sideways"
    assert seen["warns"]["warnings"] == [
        ("UserWarning", "value is 9"), ("DeprecationWarning", "this node is old"),
        ("UserWarning", "Flow ends: 'nowhere' not found in ['elsewhere']")]
    assert seen["async_mixed"]["shared"]["async_result"] == ["async ok at attempt 2", 2]
    assert seen["fallback_and_retries"]["shared"]["results"][1] == {
        "result": "fallback: attempt 1 failed", "attempts": 2}
    assert seen["parallel_batch_node"]["shared"]["squares"] == [n * n for n in range(12)]
    assert seen["no_fallback"]["error"] == ("ValueError", "attempt 1 failed")
    assert seen["async_node_in_sync_flow"]["error"] == ("RuntimeError", "Use run_async.")
    assert set(seen["cookbook_translate"]["files"]) == {
        "README_GERMAN.md", "README_FRENCH.md", "README_KOREAN.md", "README_SPANISH.md"}
    assert seen["cookbook_agent"]["action"] == "answered"
    assert seen["copies_of_nodes"]["shared"]["counted"] == [1, 1, 1]  # a copy per run
    assert ("SeedWarning", "run 1") in seen["copies_of_nodes"]["warnings"]
    assert seen["async_nested_routing"]["action"] == "finished"
    assert seen["async_batch_none"]["error"] == ("TypeError", "'NoneType' object is not iterable")
