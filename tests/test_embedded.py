"""End to end on the embedded default: the cluster code over an in-memory Redis."""

import asyncio
import datetime as dt
import operator
import threading
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import pydantic
import pytest

from arqgraph.config import get_stream_writer
from arqgraph.embedded import EmbeddedCluster
from arqgraph.errors import (
    InvalidInputError,
    InvalidUpdateError,
    RunCancelledError,
    SerializationError,
    UnknownGraphError,
)
from arqgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    value: int
    log: Annotated[list, operator.add]
    threads: Annotated[list, operator.add]
    blob: object


def single(fn, schema=State, name="single"):
    builder = StateGraph(schema)
    builder.add_node("node", fn)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    return builder.compile(name=name)


@dataclass
class Span:
    start: dt.datetime
    tags: tuple


class Rich(pydantic.BaseModel):
    when: dt.datetime
    raw: bytes
    ids: set[int]
    span: Span | None = None


class RichState(TypedDict, total=False):
    model: Rich
    spans: list[Span]


def test_rich_values_cross_the_wire_exactly():
    when = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)

    def touch(state):
        model = state["model"]
        return {"spans": [Span(model.when, (1, "a"))], "model": model.model_copy(update={"ids": {9}})}

    out = single(touch, RichState).invoke({"model": Rich(when=when, raw=b"\x00", ids={1})})
    assert out == {
        "model": Rich(when=when, raw=b"\x00", ids={9}),
        "spans": [Span(when, (1, "a"))],
    }
    assert isinstance(out["spans"][0].tags, tuple)


def test_sync_nodes_run_off_the_event_loop_and_async_nodes_on_it():
    loop_thread = {}

    async def on_loop(state):
        loop_thread["id"] = threading.get_ident()
        return {"threads": ["async"]}

    def in_thread(state):
        return {"threads": [threading.get_ident()]}

    builder = StateGraph(State)
    builder.add_node("a", on_loop)
    builder.add_node("s", in_thread)
    builder.add_edge(START, "a")
    builder.add_edge(START, "s")
    out = builder.compile().invoke({"value": 1})
    assert out["threads"][0] == "async"
    assert out["threads"][1] != loop_thread["id"]


def test_many_nodes_of_a_step_run_concurrently_on_one_worker():
    both_started = asyncio.Event()
    started = []

    async def wait_for_sibling(state):
        started.append(1)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 10)  # deadlocks unless run concurrently
        return {"log": [1]}

    builder = StateGraph(State)
    builder.add_node("a", wait_for_sibling)
    builder.add_node("b", wait_for_sibling)
    builder.add_edge(START, "a")
    builder.add_edge(START, "b")
    assert builder.compile().invoke({"value": 0})["log"] == [1, 1]


def test_input_that_fails_a_pydantic_schema_names_the_field():
    class Strict(pydantic.BaseModel):
        count: int

    graph = single(lambda s: {"count": s.count + 1}, Strict)
    # The caller gets pydantic's own error, as from LangGraph; a producer that submits by
    # name, without the graph, gets the orchestrator's InvalidInputError naming the field.
    with pytest.raises(pydantic.ValidationError, match="count"):
        graph.invoke({"count": "many"})
    assert graph.invoke({"count": 1}) == {"count": 2}

    async def by_name() -> None:
        async with EmbeddedCluster([graph]) as cluster:
            handle = await cluster.client.submit(graph.name, {"count": "many"})
            with pytest.raises(InvalidInputError, match="field 'count'"):
                await handle.result()

    asyncio.run(by_name())


def test_a_node_returning_a_non_dict_fails_the_run():
    with pytest.raises(InvalidUpdateError, match="Expected dict, got 5"):
        single(lambda s: 5).invoke({"value": 1})


def test_an_update_that_cannot_be_serialized_names_the_node_and_key():
    with pytest.raises(SerializationError, match=r"node 'node', key 'blob'.*_thread.lock"):
        single(lambda s: {"blob": threading.Lock()}).invoke({"value": 1})


def test_an_input_that_cannot_be_serialized_names_the_key():
    with pytest.raises(SerializationError, match=r"input key 'blob'"):
        single(lambda s: None).invoke({"blob": threading.Lock()})


def test_a_node_error_reaches_the_caller_with_type_message_and_remote_traceback():
    def broken(state):
        raise KeyError("missing thing")

    with pytest.raises(KeyError, match="missing thing") as info:
        single(broken).invoke({"value": 1})
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "in node 'node'" in notes and "def broken" not in notes and "broken" in notes


async def test_client_status_stream_and_unknown_graph():
    graph = single(lambda s: {"value": s["value"] + 1, "log": ["x"]})
    async with EmbeddedCluster([graph]) as cluster:
        with pytest.raises(UnknownGraphError, match="'nope'.*single"):
            await cluster.client.submit("nope", {})
        handle = await cluster.client.submit("single", {"value": 1})
        events = [e async for e in handle.stream(["updates", "values"])]
        assert events == [
            ("values", {"value": 1, "log": [], "threads": []}),
            ("updates", {"node": {"value": 2, "log": ["x"]}}),
            ("values", {"value": 2, "log": ["x"], "threads": []}),
        ]
        assert await handle.result() == {"value": 2, "log": ["x"], "threads": []}
        assert await handle.status() == "done"


async def test_a_run_read_only_at_its_end_records_none_of_its_steps_events():
    graph = single(lambda s: {"value": s["value"] + 1, "log": ["x"]})
    async with EmbeddedCluster([graph]) as cluster:
        handle = await cluster.client.submit("single", {"value": 1}, end_only=True)
        assert await handle.result() == {"value": 2, "log": ["x"], "threads": []}
        modes = [mode async for mode, _ in cluster.client.store.events.read(handle.run_id)]
        assert modes == ["end"]


def test_a_subgraph_a_node_streams_shows_its_events_under_an_invoke():
    inner = single(lambda s: {"value": s["value"] * 10}, name="inner")

    async def outer_node(state: State) -> dict[str, Any]:
        seen = [chunk async for chunk in inner.astream({"value": state["value"]},
                                                       stream_mode="values")]
        return {"log": [c["value"] for c in seen]}

    outer = single(outer_node, name="outer")
    assert outer.invoke({"value": 2})["log"] == [2, 20]


async def test_cancel_stops_a_run_between_supersteps():
    release = asyncio.Event()
    ran = []

    async def first(state):
        await release.wait()
        return {"log": ["first"]}

    def second(state):
        ran.append("second")
        return {"log": ["second"]}

    builder = StateGraph(State)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    graph = builder.compile(name="cancel")
    async with EmbeddedCluster([graph]) as cluster:
        handle = await cluster.client.submit("cancel", {"value": 0})
        while await handle.status() != "running":
            await asyncio.sleep(0.01)
        await handle.cancel()
        release.set()
        with pytest.raises(RunCancelledError):
            await handle.result()
        assert await handle.status() == "cancelled"
    assert ran == []


def test_custom_events_from_sync_and_async_nodes_arrive_in_order():
    def sync_node(state):
        writer = get_stream_writer()
        for i in range(3):
            writer({"sync": i})
        return {"log": ["s"]}

    async def async_node(state, writer):
        writer("async")
        return None

    builder = StateGraph(State)
    builder.add_node("s", sync_node)
    builder.add_node("a", async_node)
    builder.add_edge(START, "s")
    builder.add_edge("s", "a")
    events = list(builder.compile().stream({"value": 1}, stream_mode=["custom", "updates"]))
    assert events == [
        ("custom", {"sync": 0}),
        ("custom", {"sync": 1}),
        ("custom", {"sync": 2}),
        ("updates", {"s": {"log": ["s"]}}),
        ("custom", "async"),
        ("updates", {"a": None}),
    ]


def test_invoke_works_inside_a_running_event_loop():
    graph = single(lambda s: {"value": 3})

    async def notebook_cell():
        return graph.invoke({"value": 1})

    assert asyncio.run(notebook_cell())["value"] == 3


def test_node_cache_embedded_lives_in_the_graphs_cache_object() -> None:
    """Embedded, a node's cached results live in the cache the graph was compiled with: the
    caller's own object, which `clear_cache` empties for the nodes it names."""
    from typing import TypedDict

    from arqgraph.cache.memory import InMemoryCache
    from arqgraph.graph import START, StateGraph
    from arqgraph.types import CachePolicy

    class Numbers(TypedDict, total=False):
        n: int
        out: int

    calls: list[int] = []

    def square(state: Numbers) -> dict[str, int]:
        calls.append(state["n"])
        return {"out": state["n"] ** 2}

    builder = StateGraph(Numbers)
    builder.add_node("square", square, cache_policy=CachePolicy(ttl=60))
    builder.add_edge(START, "square")
    cache: InMemoryCache[bytes] = InMemoryCache()
    graph = builder.compile(cache=cache)
    assert graph.invoke({"n": 3}) == {"n": 3, "out": 9}
    assert list(graph.stream({"n": 3})) == [
        {"square": {"out": 9}, "__metadata__": {"cached": True}}]
    assert calls == [3]
    assert len(cache._cache) == 1  # one namespace: the node's
    graph.clear_cache(["square"])
    assert graph.invoke({"n": 3}) == {"n": 3, "out": 9} and calls == [3, 3]
    with pytest.raises(ValueError, match="No cache is set"):
        builder.compile().clear_cache()


def test_a_state_class_defined_inside_a_function_runs_embedded() -> None:
    """LangGraph runs a graph whose state class is local to a function; so does the embedded
    default (its processes are one, which can rebuild such a class). On a cluster the run
    fails, naming the class (tests/test_cluster.py)."""

    def make() -> tuple[Any, type[pydantic.BaseModel]]:
        class Local(pydantic.BaseModel):
            x: int = 0

        builder = StateGraph(Local)
        builder.add_node("n", lambda s: {"x": s.x + 1})
        builder.add_edge(START, "n")
        return builder.compile(), Local

    first, first_cls = make()
    second, second_cls = make()  # another class of the same name: not confused with the first
    assert first.invoke(first_cls(x=1)) == {"x": 2}
    assert second.invoke(second_cls(x=5)) == {"x": 6}


def _closed_early(root: str) -> list[Any]:
    """Stream a run and stop reading at its first update, then look at the thread and resume
    it: a node of the step still running is cancelled, the finished one's writes show, and
    the thread is free."""
    import contextlib
    import importlib

    graph_api = importlib.import_module(f"{root}.graph")
    saver = importlib.import_module(f"{root}.checkpoint.memory").InMemorySaver()
    seen: dict[str, Any] = {"slow starts": 0, "cancelled": False}

    class Counted(TypedDict):
        value: Annotated[int, operator.add]

    async def quick(state: Counted) -> dict[str, int]:
        return {"value": 2}

    async def slow(state: Counted) -> dict[str, int]:
        seen["slow starts"] += 1
        if seen["slow starts"] == 1:  # (waits until it is cancelled)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                seen["cancelled"] = True
                raise
        return {"value": 10}

    builder = graph_api.StateGraph(Counted)
    builder.add_node("quick", quick)
    builder.add_node("slow", slow)
    builder.add_edge(graph_api.START, "quick")
    builder.add_edge(graph_api.START, "slow")
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "closed"}}

    async def run() -> list[Any]:
        async with contextlib.aclosing(graph.astream({"value": 1}, config)) as stream:
            first = [chunk async for chunk in _first(stream)]
        state = await graph.aget_state(config)
        resumed = await asyncio.wait_for(graph.ainvoke(None, config), 30)
        return [first, state.values, state.next, resumed, dict(seen)]

    return asyncio.run(run())


async def _first(stream: Any) -> Any:
    async for chunk in stream:
        yield chunk
        return


def test_a_stream_closed_early_cancels_its_run_and_frees_its_thread() -> None:
    expected = _closed_early("langgraph")
    assert expected[1:3] == [{"value": 3}, ("slow",)]
    assert _closed_early("arqgraph") == expected


async def test_a_fan_outs_sends_all_start_before_any_of_them_goes_on() -> None:
    """As in LangGraph, a step's tasks all start together: the worker takes a fan-out's jobs,
    batch after batch, before the nodes it started run, so none of them ends before the last
    has started (a node that yields once would otherwise end before the next batch starts)."""
    from arqgraph.types import Send

    seen: list[str] = []

    async def fan(state: State) -> list[Send]:
        return [Send("leaf", {"value": i}) for i in range(100)]

    async def leaf(state: State) -> dict[str, Any]:
        seen.append("start")
        await asyncio.sleep(0)
        seen.append("end")
        return {"log": [state["value"]]}

    builder = StateGraph(State)
    builder.add_node("leaf", leaf)
    builder.add_conditional_edges(START, fan, ["leaf"])
    out = await builder.compile(name="starts_together").ainvoke({"log": []})
    assert sorted(out["log"]) == list(range(100))
    assert seen == ["start"] * 100 + ["end"] * 100
