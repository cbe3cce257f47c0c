"""LangChain callbacks in a run's config hear the graph's run as LangGraph reports it: one root
chain run with the graph's name, its input, and its output (an interrupted run's state without
the interrupts) or its error; under it, a chain run per node, as the workers record them.
Compared with LangGraph's own report of the same program, on the embedded default and on a
real cluster (the graph served by tests/test_differential_cluster.py's processes, see
test_callbacks_on_a_cluster there)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="callbacks are LangChain's")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.tracers.base import BaseTracer  # noqa: E402
from langchain_core.tracers.schemas import Run  # noqa: E402

from tests.differential.api import REFERENCE, Api  # noqa: E402
from tests.graphs.traced_graphs import FLAGS, build_traced  # noqa: E402


class Collector(BaseTracer):
    """Keeps the root runs it is told of."""

    def __init__(self) -> None:
        super().__init__()
        self.roots: list[Run] = []

    def _persist_run(self, run: Run) -> None:
        self.roots.append(run)


def report(api: Api, use_async: bool, cluster: str | None = None, **flags: bool
           ) -> list[tuple[Any, ...]]:
    tracer = Collector()
    graph = build_traced(api, **flags)
    graph = graph.with_cluster(cluster) if cluster else graph
    config = {"callbacks": [tracer], "run_name": "my run", "tags": ["t1"]}
    try:
        if use_async:
            asyncio.run(graph.ainvoke({"text": "hi", "log": []}, config))
        else:
            list(graph.stream({"text": "hi", "log": []}, config))
    except ValueError:
        pass
    return [tree(r) for r in tracer.roots]


def tree(run: Run) -> tuple[Any, ...]:
    """A run and the runs under it, in the order they started."""
    return (run.name, run.run_type, run.inputs, run.outputs,
            repr(run.error)[:40] if run.error else None, run.tags, run.end_time is not None,
            [tree(child) for child in sorted(run.child_runs, key=lambda c: c.dotted_order or "")])


@pytest.mark.parametrize("flags", FLAGS, ids=["done", "ask", "fail"])
@pytest.mark.parametrize("use_async", [False, True], ids=["stream", "ainvoke"])
def test_the_root_run_is_reported_as_langgraph_reports_it(flags: dict[str, bool],
                                                          use_async: bool) -> None:
    expected = report(Api(REFERENCE), use_async, **flags)
    assert len(expected) == 1 and expected[0][-1]  # (one root, with its nodes' runs)
    assert report(Api("arqgraph"), use_async, **flags) == expected


def test_a_config_without_callbacks_crosses_unchanged() -> None:
    from arqgraph.run_report import GraphRun

    config = {"tags": ["x"], "configurable": {"thread_id": "1"}}
    sent, run = asyncio.run(GraphRun.start(config, {}, "g"))
    assert sent is config and run is None
    sent, run = asyncio.run(GraphRun.start({**config, "callbacks": []}, {}, "g"))
    assert sent == config and run is None


class Tapping(BaseCallbackHandler):
    """A handler with LangChain's tap methods that does not inherit its streaming handler:
    LangGraph does not stream a node's output through it, so it hears each node's input and
    output once."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, Any]] = []
        self.nodes: set[Any] = set()

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, **kwargs: Any) -> None:
        if kwargs.get("name") == "first":
            self.nodes.add(run_id)
            self.heard.append(("start", inputs))

    def on_chain_end(self, outputs: Any, *, run_id: Any, **kwargs: Any) -> None:
        if run_id in self.nodes:
            self.heard.append(("end", outputs))

    async def tap_output_aiter(self, run_id: Any, output: AsyncIterator[Any]
                               ) -> AsyncIterator[Any]:
        async for chunk in output:
            if run_id in self.nodes:
                self.heard.append(("tapped", chunk))
            yield chunk

    def tap_output_iter(self, run_id: Any, output: Iterator[Any]) -> Iterator[Any]:
        for chunk in output:
            if run_id in self.nodes:
                self.heard.append(("tapped", chunk))
            yield chunk


def tapped(api: Api) -> list[tuple[str, Any]]:
    handler = Tapping()
    graph = build_traced(api, **FLAGS[0])
    asyncio.run(graph.ainvoke({"text": "hi", "log": []}, {"callbacks": [handler]}))
    return handler.heard


def test_a_handler_with_tap_methods_is_not_fed_node_output_as_a_stream() -> None:
    expected = tapped(Api(REFERENCE))
    assert expected and all(kind != "tapped" for kind, _ in expected)
    assert tapped(Api("arqgraph")) == expected
