"""`GraphCallbackHandler`s in a run's config hear its lifecycle as LangGraph's tell it: a resume
when a run goes on from its thread's checkpoint, an interrupt when it stops for a human (at a
node's `interrupt()` or a breakpoint), each naming the checkpoint and the chain run. Compared
with LangGraph's own events for the same program, on the embedded default and on a real
cluster (the graph served by tests/test_differential_cluster.py's processes); a handler that
raises is logged and the run goes on, unless it sets `raise_error`."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="callbacks are LangChain's")
pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.callbacks.manager import CallbackManager  # noqa: E402

from tests.differential.api import REFERENCE, Api  # noqa: E402
from tests.graphs.traced_graphs import build_lifecycle  # noqa: E402


def recorder(prefix: str, fail: bool = False, raise_error: bool = False) -> Any:
    """A graph handler of `prefix`'s library that keeps what it hears (or raises on it)."""
    base = importlib.import_module(f"{prefix}.callbacks").GraphCallbackHandler

    class Recorder(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.events: list[Any] = []
            self.raise_error = raise_error
            self.chain_runs: list[Any] = []

        def on_chain_start(self, *args: Any, run_id: Any = None, **kwargs: Any) -> None:
            if kwargs.get("parent_run_id") is None:
                self.chain_runs.append(run_id)

        def on_interrupt(self, event: Any) -> None:
            if fail:
                raise ValueError("boom-interrupt")
            self.events.append(event)

        def on_resume(self, event: Any) -> None:
            if fail:
                raise ValueError("boom-resume")
            self.events.append(event)

    return Recorder()


class Plain(BaseCallbackHandler):
    """A LangChain handler that is not a graph handler: hears no lifecycle event."""

    def __init__(self) -> None:
        self.custom: list[str] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.custom.append(name)


def lifecycle(prefix: str, use_async: bool, cluster: str | None = None,
              thread: str = "t") -> list[tuple[Any, ...]]:
    """The events of three runs on one thread (ask, resume to the breakpoint, go on), each
    shown with the checkpoint it names (before or after the run that told it)."""
    api = Api(prefix)
    graph = build_lifecycle(api)
    graph = graph.with_cluster(cluster) if cluster else graph
    handler, plain = recorder(prefix), Plain()
    config = {"configurable": {"thread_id": thread}, "callbacks": [plain, handler]}
    shown: list[tuple[Any, ...]] = []
    for value in ({"answer": None, "log": []}, api.Command(resume="because"), None):
        before = graph.get_state(config).config["configurable"].get("checkpoint_id")
        heard = len(handler.events)
        output = asyncio.run(graph.ainvoke(value, config)) if use_async else graph.invoke(
            value, config)
        after = graph.get_state(config).config["configurable"]["checkpoint_id"]
        for event in handler.events[heard:]:
            named = {before: "before", after: "after"}.get(event.checkpoint_id, "other")
            asked = tuple(i.value for i in getattr(event, "interrupts", ()))
            shown.append((type(event).__name__, event.status, event.checkpoint_ns, named,
                          asked, event.run_id == handler.chain_runs[-1]))
        asked = [i.value for i in output.pop("__interrupt__", [])]
        shown.append(("output", output, asked))
    assert plain.custom == []
    return shown


@pytest.mark.parametrize("use_async", [False, True], ids=["invoke", "ainvoke"])
def test_lifecycle_events_are_langgraphs(use_async: bool) -> None:
    expected = lifecycle(REFERENCE, use_async)
    assert [e[0] for e in expected if e[0] != "output"] == [
        "GraphInterruptEvent", "GraphResumeEvent", "GraphInterruptEvent", "GraphResumeEvent"]
    assert lifecycle("arqgraph", use_async) == expected


@pytest.mark.parametrize("use_async", [False, True], ids=["invoke", "ainvoke"])
def test_a_raising_handler_does_not_stop_the_run_nor_the_others(use_async: bool) -> None:
    api = Api("arqgraph")
    graph = build_lifecycle(api)
    raising, kept = recorder("arqgraph", fail=True), recorder("arqgraph")
    config = {"configurable": {"thread_id": "r"}, "callbacks": [raising, kept]}
    for value in ({"answer": None, "log": []}, api.Command(resume="because")):
        if use_async:
            asyncio.run(graph.ainvoke(value, config))
        else:
            graph.invoke(value, config)
    assert [type(e).__name__ for e in kept.events] == [
        "GraphInterruptEvent", "GraphResumeEvent", "GraphInterruptEvent"]


@pytest.mark.parametrize("use_async", [False, True], ids=["invoke", "ainvoke"])
def test_a_handler_with_raise_error_fails_the_run(use_async: bool) -> None:
    graph = build_lifecycle(Api("arqgraph"))
    config = {"configurable": {"thread_id": "e"},
              "callbacks": [recorder("arqgraph", fail=True, raise_error=True)]}
    with pytest.raises(ValueError, match="boom-interrupt"):
        if use_async:
            asyncio.run(graph.ainvoke({"answer": None, "log": []}, config))
        else:
            graph.invoke({"answer": None, "log": []}, config)


def test_graph_handlers_are_found_in_a_callback_manager() -> None:
    graph = build_lifecycle(Api("arqgraph"))
    handler = recorder("arqgraph")
    manager = CallbackManager.configure(inheritable_callbacks=[Plain()])
    manager.add_handler(handler)
    graph.invoke({"answer": None, "log": []}, {"configurable": {"thread_id": "m"},
                                                "callbacks": manager})
    assert [e.interrupts[0].value for e in handler.events] == ["why?"]


def test_the_graph_managers_keep_only_graph_handlers() -> None:
    from arqgraph.callbacks import (
        get_async_graph_callback_manager_for_config,
        get_sync_graph_callback_manager_for_config,
    )

    handler, plain = recorder("arqgraph"), Plain()
    sync = get_sync_graph_callback_manager_for_config({"callbacks": [plain, handler]})
    assert sync.handlers == [handler] and sync.run_id is None
    assert not get_async_graph_callback_manager_for_config({}).handlers
    with pytest.raises(TypeError, match="callbacks must be"):
        get_sync_graph_callback_manager_for_config({"callbacks": "no"})
    with pytest.raises(TypeError, match="run_id must be"):
        sync.copy(run_id="not a uuid")
