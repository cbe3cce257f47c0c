"""The runs of a graph's nodes reach the caller's LangChain callbacks as child runs of the graph's
run, as LangGraph reports them (name, input, output or error, step tag), though the nodes ran on
workers: the producer tells them from the "tasks" events the workers recorded. A node's
`TracePolicy` changes what tracers record, not what the node, the graph or other handlers see;
a processor that raises records the real value. Compared with LangGraph's own report of the same
programs, on the embedded default and on a real cluster (the graphs served by
tests/test_differential_cluster.py's processes, see test_node_runs_on_a_cluster there)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest

pytest.importorskip("langchain_core", reason="callbacks are LangChain's")
pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.tracers.schemas import Run  # noqa: E402

from tests.differential.api import REFERENCE, Api  # noqa: E402
from tests.graphs.traced_graphs import build_lifecycle, build_policed, build_traced  # noqa: E402
from tests.test_callbacks import Collector  # noqa: E402


class Seer(BaseCallbackHandler):
    """Not a tracer: hears the real input and output of the nodes' runs."""

    def __init__(self) -> None:
        self.names: dict[UUID, str] = {}
        self.seen: list[tuple[str, Any]] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        if parent_run_id is not None:
            self.names[run_id] = kwargs.get("name", "")
            self.seen.append((self.names[run_id], inputs))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if run_id in self.names:
            self.seen.append((self.names[run_id], outputs))


def tree(run: Run) -> tuple[Any, ...]:
    """What a run records, its nodes' runs within (LangGraph's branch runs left out)."""
    meta = (run.extra or {}).get("metadata", {})
    inputs = run.inputs
    if type(inputs.get("input")).__name__ == "Command":  # (each library's own class)
        inputs = {"input": ("Command", inputs["input"].resume)}
    error = run.error.split("(")[0] if run.error else None  # (the type: ours has no traceback)
    return (run.name, inputs, run.outputs, error,
            [t for t in run.tags or () if t.startswith("graph:")],
            meta.get("langgraph_node"), meta.get("langgraph_step"),
            [tree(c) for c in run.child_runs if c.tags and any(
                t.startswith("graph:step") for t in c.tags)])


def report(prefix: str, build: Any, inputs: list[Any], use_async: bool,
           cluster: str | None = None, thread: str = "n") -> tuple[Any, ...]:
    api = Api(prefix)
    graph = build(api)
    graph = graph.with_cluster(cluster) if cluster else graph
    tracer, seer = Collector(), Seer()
    config: dict[str, Any] = {"callbacks": [tracer, seer],
                              "configurable": {"thread_id": thread}}
    outputs = []
    for value in inputs:
        value = api.Command(resume=value["resume"]) if "resume" in value else value
        try:
            output = (asyncio.run(graph.ainvoke(value, config)) if use_async
                      else graph.invoke(value, config))
            outputs.append({k: v for k, v in output.items() if k != "__interrupt__"})
        except ValueError as exc:
            outputs.append(repr(exc))
    return outputs, [tree(r) for r in tracer.roots], seer.seen


BUILDS = {
    "policed": (build_policed, [{"text": "hi", "log": []}]),
    "failing": (lambda api: build_traced(api, fail=True), [{"text": "hi", "log": []}]),
    "asking": (build_lifecycle, [{"answer": None, "log": []}, {"resume": "yes"}]),
}


@pytest.mark.parametrize("name", list(BUILDS))
@pytest.mark.parametrize("use_async", [False, True], ids=["invoke", "ainvoke"])
def test_node_runs_are_reported_as_langgraph_reports_them(name: str, use_async: bool) -> None:
    build, inputs = BUILDS[name]
    expected = report(REFERENCE, build, inputs, use_async)
    assert expected[1] and all(root[-1] for root in expected[1])  # (nodes' runs were told)
    assert report("arqgraph", build, inputs, use_async) == expected


def test_a_trace_policy_changes_only_what_tracers_record() -> None:
    outputs, roots, seen = report("arqgraph", build_policed, [{"text": "hi", "log": []}], False)
    assert outputs == [{"text": "hi!", "log": ["hi"]}]
    first, second = roots[0][-1]
    assert (first[1], first[2]) == ({"seen": ["log", "text"]}, {})
    assert (second[1], second[2]) == ({"text": "hi", "log": ["hi"]}, {"text": "hi!"})
    assert seen[:2] == [("first", {"text": "hi", "log": []}), ("first", {"log": ["hi"]})]


def test_a_trace_policy_is_checked_at_add_node() -> None:
    api = Api("arqgraph")
    with pytest.raises(TypeError, match="trace_policy must be a TracePolicy"):
        api.StateGraph(dict).add_node("n", lambda s: s, trace_policy={"process_inputs": 1})


def calls_report(prefix: str, cluster: str | None = None) -> list[Any]:
    """An entrypoint's run as reported: the graph's run, its node's, and the runs of the task
    calls the node made (name, input, output, error type), children of the node's."""
    from tests.graphs.functional_graphs import build_traced_calls

    graph = build_traced_calls(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    tracer = Collector()
    assert asyncio.run(graph.ainvoke([1, 2], {"callbacks": [tracer]})) == ["11", "22", "refused"]

    def shown(run: Run) -> tuple[Any, ...]:
        return (run.name, run.inputs, run.outputs, run.error.split("(")[0] if run.error else None)

    return [(shown(root), [(shown(node), [shown(c) for c in node.child_runs])
                           for node in root.child_runs]) for root in tracer.roots]


def test_task_calls_are_reported_under_their_entrypoints_node() -> None:
    expected = calls_report(REFERENCE)
    assert [len(calls) for _, nodes in expected for _, calls in nodes] == [3]
    assert calls_report("arqgraph") == expected
