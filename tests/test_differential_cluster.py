"""The differential cases on a real cluster: the same programs as tests/test_differential.py,
run by separate orchestrator and worker processes over a real redis-server, must give what
LangGraph gives in process.

One orchestrator and two workers serve every case's graph (`tests.differential.served:GRAPHS`,
built with arqgraph's names); the test process builds the same graph, binds it to the cluster
(`with_cluster`) and runs it as a producer. Compared per case and run: the `invoke` output (or
error), and the multi-mode stream (`updates`, `values`, `custom`). The few cases that keep state
of their own between calls are skipped here (`Case.cluster` says why).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ArqProcesses, RedisServer
from tests.differential.api import REFERENCE, Api
from tests.differential.cases import CASES, Case
from tests.differential.pool import served_pool
from tests.graphs.traced_graphs import FLAGS
from tests.test_differential import (
    _explain,
    _in_order,
    _invoke,
    _keyed,
    _recorded,
    _stream,
    recorded_modes_cases,
)

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")

SPEC = "tests.differential.served:GRAPHS"
DATABASE = 5  # a database of its own on the session's redis-server


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[str]:
    with served_pool(redis_server, arq_processes, SPEC, DATABASE, "diff") as url:
        yield url


def _cluster_runs() -> list[object]:
    return [
        pytest.param(case, i, id=f"{case.name}-{i}")
        for case in CASES if case.cluster is True
        for i in range(len(case.runs))
    ]


def test_the_cases_left_out_say_why() -> None:
    left_out = [c for c in CASES if c.cluster is not True]
    assert all(isinstance(c.cluster, str) and c.cluster for c in left_out)
    assert len(left_out) <= 5, [c.name for c in left_out]


@pytest.mark.parametrize(("case", "run_index"), _cluster_runs())
def test_cluster_run_matches_langgraph(case: Case, run_index: int, cluster: str) -> None:
    reference, candidate = Api(REFERENCE), Api("arqgraph")
    expected = _invoke(reference, case, run_index, use_async=case.async_only)
    actual = _invoke(candidate, case, run_index, use_async=case.async_only, cluster=cluster)
    assert actual == expected, "cluster invoke " + _explain(case, run_index)
    expected = _stream(reference, case, run_index, "multi", use_async=case.async_only)
    actual = _stream(candidate, case, run_index, "multi", use_async=case.async_only,
                     cluster=cluster)
    assert actual == expected, "cluster stream multi " + _explain(case, run_index)


@pytest.mark.parametrize("flags", FLAGS, ids=["done", "ask", "fail"])
def test_callbacks_on_a_cluster(flags: dict[str, bool], cluster: str) -> None:
    """The producer of a cluster run reports it to its callbacks as LangGraph would."""
    pytest.importorskip("langchain_core", reason="callbacks are LangChain's")
    from tests.test_callbacks import report

    expected = report(Api(REFERENCE), True, **flags)
    assert report(Api("arqgraph"), True, cluster=cluster, **flags) == expected


@pytest.mark.parametrize("use_async", [False, True], ids=["invoke", "ainvoke"])
def test_graph_lifecycle_callbacks_on_a_cluster(use_async: bool, cluster: str) -> None:
    """The producer of a cluster run tells its graph handlers of resumes and interrupts as
    LangGraph would."""
    pytest.importorskip("langchain_core", reason="callbacks are LangChain's")
    from tests.test_graph_lifecycle_callbacks import lifecycle

    expected = lifecycle(REFERENCE, use_async)
    thread = f"lifecycle-{int(use_async)}"
    assert lifecycle("arqgraph", use_async, cluster=cluster, thread=thread) == expected


def test_task_call_runs_on_a_cluster(cluster: str) -> None:
    """The runs of an entrypoint's task calls, made by workers, reported by the producer."""
    pytest.importorskip("langchain_core", reason="callbacks are LangChain's")
    from tests.test_node_runs import calls_report

    assert calls_report("arqgraph", cluster=cluster) == calls_report(REFERENCE)


@pytest.mark.parametrize("name", ["policed", "failing", "asking"])
def test_node_runs_on_a_cluster(name: str, cluster: str) -> None:
    """The producer of a cluster run reports its nodes' runs (their TracePolicy applied by
    the workers) as LangGraph would."""
    pytest.importorskip("langchain_core", reason="callbacks are LangChain's")
    from tests.test_node_runs import BUILDS, report

    build, inputs = BUILDS[name]
    expected = report(REFERENCE, build, inputs, True)
    assert report("arqgraph", build, inputs, True, cluster=cluster, thread=f"nodes-{name}"
                  ) == expected


@pytest.mark.parametrize("name", ["step", "send", "task", "entrypoint"])
def test_timeouts_on_a_cluster(name: str, cluster: str) -> None:
    """A graph's step_timeout, a Send's, a task's and an entrypoint's timeout, on workers of
    other processes: as LangGraph's in process."""
    from tests.test_timeouts_surface import outcome

    assert outcome("arqgraph", name, cluster=cluster) == outcome(REFERENCE, name)


@pytest.mark.parametrize("invoked", [False, True], ids=["node", "invoked"])
@pytest.mark.parametrize("durability", ["exit", "sync"])
def test_durability_on_a_cluster(durability: str, invoked: bool, cluster: str) -> None:
    """What a run with a subgraph (a node, or invoked in one) lists in its thread's history,
    per durability, on a cluster: as LangGraph."""
    from tests.test_durability_exit import histories

    expected = histories(REFERENCE, durability, invoked=invoked)
    assert histories("arqgraph", durability, cluster=cluster, thread="cluster",
                     invoked=invoked) == expected


@pytest.mark.parametrize("durability", ["exit", "sync"])
def test_resumed_durability_on_a_cluster(durability: str, cluster: str) -> None:
    """A step stopped at a question and resumed: its history as LangGraph's, per durability."""
    from tests.test_durability_exit import resumed_history

    expected = resumed_history(REFERENCE, durability)
    assert resumed_history("arqgraph", durability, cluster=cluster,
                           thread="cluster-resumed") == expected


def test_subgraphs_resumed_after_an_edit_or_a_question_on_a_cluster(cluster: str) -> None:
    """A subgraph an update finished ends at once when its parent resumes, and one a node ran
    before its question is not run again: on a cluster too, as LangGraph."""
    from tests.test_subgraphs import edited_subgraph_resumes, subgraph_then_question

    assert edited_subgraph_resumes("arqgraph", cluster) == edited_subgraph_resumes(REFERENCE)
    assert subgraph_then_question("arqgraph", cluster) == subgraph_then_question(REFERENCE)


def test_a_resumed_subgraphs_history_on_a_cluster(cluster: str) -> None:
    """A subgraph resumed to its end under "exit" shows no result where it stopped."""
    from tests.test_durability_exit import resumed_subgraph_history

    assert resumed_subgraph_history("arqgraph", "exit", cluster=cluster, thread="cluster-sub"
                                    ) == resumed_subgraph_history(REFERENCE, "exit")


def test_an_entrypoints_previous_and_final_on_a_cluster(cluster: str) -> None:
    """`previous` gets what `entrypoint.final` saved, not what it returned, on a cluster too."""
    from tests.graphs.functional_graphs import counting_run

    expected = counting_run(REFERENCE)
    assert expected[:2] == ["total 2", "total 5"]  # (previous: the saved number)
    assert counting_run("arqgraph", cluster, thread="cluster-counting") == expected


def stopped_handler_run(prefix: str, folder: Path, cluster: str | None = None) -> list[Any]:
    """A run whose sibling's failure stops an error handler, then resumed: what each returned
    and which nodes were called (only the handler and the sibling again, as LangGraph)."""
    from tests.graphs.durability_graphs import build_stopped_handler

    graph = build_stopped_handler(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    config = {"configurable": {"thread_id": f"stopped-{folder.name}"}}
    seen: list[Any] = []
    try:  # (async nodes: LangGraph runs them only through its async API)
        seen.append(asyncio.run(graph.ainvoke({"log": [], "folder": str(folder)}, config)))
    except Exception as exc:
        seen.append(str(exc))
    (folder / "resumed").touch()
    seen.append(asyncio.run(graph.ainvoke(None, config))["log"])
    return [*seen, sorted((folder / "calls").read_text().split())]


def test_a_handler_stopped_by_a_siblings_failure_runs_alone_on_resume_on_a_cluster(
        cluster: str, tmp_path: Path) -> None:
    """On a cluster too, the resumed run runs the stopped error handler, not its node."""
    (tmp_path / "ref").mkdir()
    (tmp_path / "got").mkdir()
    expected = stopped_handler_run(REFERENCE, tmp_path / "ref")
    assert expected[-1] == ["fails", "handler", "handler", "sibling", "sibling"]
    assert stopped_handler_run("arqgraph", tmp_path / "got", cluster) == expected


def test_nested_tasks_on_a_cluster(cluster: str) -> None:
    """Tasks calling tasks stream their updates in LangGraph's order, and a graph invoked by
    an entrypoint after its own question was answered starts afresh, on a cluster too."""
    from tests.test_func import nested_run

    assert nested_run("arqgraph", cluster=cluster) == nested_run(REFERENCE)


@pytest.mark.parametrize(("case", "run_index"),
                         [p for p in _cluster_runs() if p.values[0].name.startswith("subgraph")])
def test_cluster_subgraph_stream_matches_langgraph(case: Case, run_index: int, cluster: str) -> None:
    """`stream(subgraphs=True)` through the producer client: the child runs' events, read where
    their parent tasks announce them, with LangGraph's namespaces."""
    reference, candidate = Api(REFERENCE), Api("arqgraph")
    expected = _stream(reference, case, run_index, "multi", case.async_only, subgraphs=True)
    actual = _stream(candidate, case, run_index, "multi", case.async_only, cluster=cluster,
                     subgraphs=True)
    assert actual == expected, "cluster subgraphs=True " + _explain(case, run_index)


@pytest.mark.parametrize("mode", ["debug", "v2"])
@pytest.mark.parametrize(("case", "run_index"),
                         [p for p in recorded_modes_cases() if p.values[0].cluster is True][::4])
def test_cluster_recorded_modes_match_langgraph(case: Case, run_index: int, mode: str,
                                                cluster: str) -> None:
    """The "tasks" and "debug" events a producer asks for at submit, recorded by the workers
    and orchestrator of a cluster, and the v2 stream parts: as LangGraph's."""
    expected = _recorded(Api(REFERENCE), case, run_index, mode)
    actual = _recorded(Api("arqgraph"), case, run_index, mode, cluster=cluster)
    assert sorted(map(_keyed, actual)) == sorted(map(_keyed, expected)), _explain(case, run_index)
    assert _in_order(actual) == _in_order(expected), _explain(case, run_index)


def test_a_task_call_cancelled_on_a_cluster(cluster: str, tmp_path: Path) -> None:
    """A call cancelled by its entrypoint stops on the worker running it, and runs afresh
    when the entrypoint is resumed: as LangGraph."""
    from tests.test_func import cancelled_call_run

    (tmp_path / "lg").mkdir()
    (tmp_path / "arq").mkdir()
    expected = cancelled_call_run(REFERENCE, tmp_path / "lg")
    assert cancelled_call_run("arqgraph", tmp_path / "arq", cluster=cluster) == expected


def test_a_task_with_a_cache_policy_on_a_cluster(cluster: str, tmp_path: Path) -> None:
    """Calls of a cached task find earlier results in the cluster's shared cache."""
    from tests.test_func import cached_calls_run

    (tmp_path / "lg").mkdir()
    (tmp_path / "arq").mkdir()
    expected = cached_calls_run(REFERENCE, tmp_path / "lg")
    assert cached_calls_run("arqgraph", tmp_path / "arq", cluster=cluster) == expected


def test_an_unanswered_call_runs_again_on_a_cluster(cluster: str, tmp_path: Path) -> None:
    """A call whose question a resume left unanswered runs again, as LangGraph's task."""
    from tests.test_func import two_asking_calls_run

    (tmp_path / "lg").mkdir()
    (tmp_path / "arq").mkdir()
    expected = two_asking_calls_run(REFERENCE, tmp_path / "lg")
    assert two_asking_calls_run("arqgraph", tmp_path / "arq", cluster=cluster) == expected
    for side in ("lg-reversed", "arq-reversed"):
        (tmp_path / side).mkdir()
    expected = two_asking_calls_run(REFERENCE, tmp_path / "lg-reversed", reverse=True)
    assert two_asking_calls_run("arqgraph", tmp_path / "arq-reversed", cluster=cluster,
                                thread="two-asking-reversed", reverse=True) == expected


def test_a_cancelled_run_cancels_its_calls_on_a_cluster(cluster: str, tmp_path: Path) -> None:
    """A run cancelled while a task call runs on a worker process cancels that call there."""
    import asyncio
    import os

    from arqgraph.client import Client

    def marked(what: str) -> bool:
        return any(name.startswith(what) for name in os.listdir(tmp_path))

    async def run() -> list[str]:
        client = await Client.connect(cluster)
        try:
            handle = await client.submit("awaits_a_slow_call", str(tmp_path))
            while not marked("started"):
                await asyncio.sleep(0.01)
            await handle.cancel()
            while not marked("cancelled"):
                await asyncio.sleep(0.01)
        finally:
            await client.close()
        return sorted(name.split("-")[0] for name in os.listdir(tmp_path))

    assert asyncio.run(asyncio.wait_for(run(), 60)) == ["cancelled", "started"]


def test_a_nested_task_call_streams_as_its_own_task_on_a_cluster(cluster: str) -> None:
    from tests.test_func import nested_call_messages

    assert nested_call_messages("arqgraph", cluster=cluster) == nested_call_messages(REFERENCE)


def test_an_entrypoints_history_on_a_cluster(cluster: str) -> None:
    from tests.test_func import entrypoint_history

    assert entrypoint_history("arqgraph", cluster=cluster) == entrypoint_history(REFERENCE)


def test_a_failed_call_runs_again_on_a_cluster(cluster: str, tmp_path: Path) -> None:
    """A call failed in an entrypoint's first start runs again when it is resumed."""
    from tests.test_func import flaky_call_run

    assert (flaky_call_run("arqgraph", tmp_path, cluster=cluster)
            == flaky_call_run("langgraph", tmp_path))


def test_task_call_events_on_a_cluster(cluster: str) -> None:
    """The "tasks" events of an entrypoint and its task calls, resumed, on a cluster."""
    from tests.test_func import entrypoint_task_events

    assert (entrypoint_task_events("arqgraph", cluster=cluster)
            == entrypoint_task_events(REFERENCE))


def test_task_calls_stream_from_a_cluster(cluster: str) -> None:
    """What task calls stream reaches the producer from the workers that run them."""
    from tests.test_func import langgraphs_task_calls_stream, streamed_calls

    assert streamed_calls("arqgraph", cluster=cluster) == langgraphs_task_calls_stream()
