"""Graphs served by the orchestrator and worker processes of tests/test_cluster.py.

Only `shared.*` is imported here (plus the standard library and pydantic), as a graph module of
a real deployment would be. Every graph is compiled with an explicit name; `GRAPHS` is the list
the main cluster serves (`tests.graphs.cluster_graphs:GRAPHS`). `versioned` is served apart, by
an orchestrator on its own queue (see tests/graphs/cluster_graphs_v2.py).

Each graph comes with `expected_*` functions that compute its final state in plain Python,
independently of any runtime.
"""

import asyncio
import operator
import os
import time
from pathlib import Path
from typing import Annotated, TypedDict

import pydantic

from arqgraph.cache.memory import InMemoryCache
from arqgraph.config import get_stream_writer
from arqgraph.func import entrypoint, task
from arqgraph.graph import END, START, StateGraph
from arqgraph.nodes import AsyncBaseNode, BaseNode
from arqgraph.types import CachePolicy, Send
from tests.graphs import pocketflow_graphs

# -- fan-out / fan-in with async and sync nodes ------------------------------------------------


class FanState(TypedDict, total=False):
    x: int
    a: int
    b: int
    c: int
    total: int
    log: Annotated[list[str], operator.add]


async def prep(state: FanState) -> dict:
    await asyncio.sleep(0.01)
    return {"a": state["x"] * 2, "log": ["prep"]}


async def left(state: FanState) -> dict:
    await asyncio.sleep(0.02)
    return {"b": state["a"] + 1, "log": ["left"]}


def right(state: FanState) -> dict:  # sync: runs in the worker's thread pool
    time.sleep(0.02)
    return {"c": state["a"] * 3, "log": ["right"]}


def join(state: FanState) -> dict:
    return {"total": state["b"] + state["c"] + state["x"], "log": ["join"]}


_fan = StateGraph(FanState)
_fan.add_node("prep", prep)
_fan.add_node("left", left)
_fan.add_node("right", right)
_fan.add_node("join", join)
_fan.add_edge(START, "prep")
_fan.add_edge("prep", "left")
_fan.add_edge("prep", "right")
_fan.add_edge(["left", "right"], "join")
_fan.add_edge("join", END)
fanout = _fan.compile(name="cluster_fanout")


def expected_fanout(x: int) -> dict:
    a = 2 * x
    b, c = a + 1, 3 * a
    # Writes of one step fold in task order (node name order): left before right.
    return {"x": x, "a": a, "b": b, "c": c, "total": b + c + x,
            "log": ["prep", "left", "right", "join"]}


# -- Send map-reduce ---------------------------------------------------------------------------


class MapState(TypedDict, total=False):
    items: list[int]
    squares: Annotated[list[int], operator.add]
    total: int


class ItemState(TypedDict):
    value: int


def fan_items(state: MapState) -> list[Send]:
    return [Send("square", {"value": v}) for v in state["items"]]


async def square(item: ItemState) -> dict:
    await asyncio.sleep(0.005 * (item["value"] % 3))  # finish out of send order
    return {"squares": [item["value"] ** 2]}


def reduce_squares(state: MapState) -> dict:
    return {"total": sum(state["squares"])}


_map = StateGraph(MapState)
_map.add_node("square", square)
_map.add_node("reduce", reduce_squares)
_map.add_conditional_edges(START, fan_items, ["square"])
_map.add_edge("square", "reduce")
_map.add_edge("reduce", END)
mapreduce = _map.compile(name="cluster_mapreduce")


def expected_mapreduce(items: list[int]) -> dict:
    squares = [v * v for v in items]  # folded in send order, whatever order they finished in
    return {"items": items, "squares": squares, "total": sum(squares)}


# -- custom stream events ----------------------------------------------------------------------


class TalkState(TypedDict, total=False):
    n: int
    said: int
    echoed: int


async def talk(state: TalkState) -> dict:
    write = get_stream_writer()
    for i in range(state["n"]):
        write({"talk": i})
        await asyncio.sleep(0)
    return {"said": state["n"]}


def echo(state: TalkState, writer) -> dict:  # sync, with the injected `writer`
    for i in range(state["said"]):
        writer(f"echo {i}")
    get_stream_writer()({"echo_done": True})
    return {"echoed": state["said"] * 10}


_talk = StateGraph(TalkState)
_talk.add_node("talk", talk)
_talk.add_node("echo", echo)
_talk.add_edge(START, "talk")
_talk.add_edge("talk", "echo")
_talk.add_edge("echo", END)
custom = _talk.compile(name="cluster_custom")


def expected_custom_events(n: int) -> list:
    return [{"talk": i} for i in range(n)] + [f"echo {i}" for i in range(n)] + [
        {"echo_done": True}
    ]


# -- a node that fails -------------------------------------------------------------------------


class BoomState(TypedDict, total=False):
    x: int
    y: int


def before(state: BoomState) -> dict:
    return {"y": state["x"] + 1}


def explode(state: BoomState) -> dict:
    raise ValueError("boom")


_boom = StateGraph(BoomState)
_boom.add_node("before", before)
_boom.add_node("explode", explode)
_boom.add_edge(START, "before")
_boom.add_edge("before", "explode")
_boom.add_edge("explode", END)
boom = _boom.compile(name="cluster_boom")


# -- a failing node and a slow sibling: the failure cancels the sibling (markers in a folder) ---


class SiblingState(TypedDict, total=False):
    folder: str


async def slow_sibling(state: SiblingState) -> dict:
    folder = Path(state["folder"])
    (folder / "slow-started").touch()
    try:
        await asyncio.sleep(600)
    except asyncio.CancelledError:
        (folder / "slow-cancelled").touch()
        raise
    return {}


async def failing_sibling(state: SiblingState) -> dict:
    started = Path(state["folder"]) / "slow-started"
    while not started.exists():  # fail only once the sibling runs (on any worker)
        await asyncio.sleep(0.01)
    raise ValueError("sibling failed")


_siblings = StateGraph(SiblingState)
_siblings.add_node("slow", slow_sibling)
_siblings.add_node("failing", failing_sibling)
_siblings.add_edge(START, "slow")
_siblings.add_edge(START, "failing")
siblings = _siblings.compile(name="cluster_siblings")


# -- a cached node: its calls are lines in a file, its results shared by every worker ----------


class CachedState(TypedDict, total=False):
    folder: str
    n: int
    out: int


def cached_square(state: CachedState) -> dict:
    with open(Path(state["folder"]) / "calls", "a") as calls:
        calls.write(f"{state['n']}\n")
    return {"out": state["n"] ** 2}


_cached = StateGraph(CachedState)
_cached.add_node("square", cached_square,
                 cache_policy=CachePolicy(key_func=lambda s: f"{s['folder']}:{s['n']}"))
_cached.add_edge(START, "square")
cached = _cached.compile(name="cluster_cached", cache=InMemoryCache())


# -- a pydantic state schema -------------------------------------------------------------------


class Person(pydantic.BaseModel):
    name: str
    age: int
    greeting: str = ""


def greet(state: Person) -> dict:
    return {"greeting": f"hello {state.name}, {state.age}"}


_person = StateGraph(Person)
_person.add_node("greet", greet)
_person.add_edge(START, "greet")
_person.add_edge("greet", END)
person = _person.compile(name="cluster_pydantic")


# -- which process ran a node ------------------------------------------------------------------


class WhoState(TypedDict, total=False):
    width: int
    delay: float
    pids: Annotated[list[int], operator.add]


def fan_who(state: WhoState) -> list[Send]:
    return [Send("whoami", state.get("delay", 0.1)) for _ in range(state["width"])]


async def whoami(delay: float) -> dict:
    await asyncio.sleep(delay)  # 0.1 s: long enough that one worker cannot take a step alone
    return {"pids": [os.getpid()]}


_who = StateGraph(WhoState)
_who.add_node("whoami", whoami)
_who.add_conditional_edges(START, fan_who, ["whoami"])
_who.add_edge("whoami", END)
who = _who.compile(name="cluster_whoami")


# -- a graph whose version differs between processes (see cluster_graphs_v2) -------------------


class VersionState(TypedDict, total=False):
    x: int
    steps: Annotated[list[str], operator.add]


def first(state: VersionState) -> dict:
    return {"steps": ["first"]}


_versioned = StateGraph(VersionState)
_versioned.add_node("first", first)
_versioned.add_edge(START, "first")
_versioned.add_edge("first", END)
versioned = _versioned.compile(name="cluster_versioned")


# -- class-based nodes (arqgraph.nodes) and a duck-typed callable object -------------------------


class ClassState(TypedDict, total=False):
    query: str
    seen: Annotated[list[str], operator.add]


class Fetch(AsyncBaseNode):
    async def execute(self, state):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.01)
        return {"seen": [f"fetch:{state['query']}"]}


class Rank(BaseNode):
    def execute(self, state, config):  # type: ignore[no-untyped-def]
        return {"seen": [f"rank:{self.get_thread_id(config)}"]}


class Counting:
    """A node class of a project's own: only the shape of `__call__` matters."""

    async def __call__(self, state: ClassState, config: object = None) -> dict:
        return {"seen": [f"duck:{len(state['seen'])}"]}


class_builder = StateGraph(ClassState)
class_builder.add_node("fetch", Fetch())
class_builder.add_node("rank", Rank())
class_builder.add_node("count", Counting())
class_builder.add_edge(START, "fetch")
class_builder.add_edge("fetch", "rank")
class_builder.add_edge("rank", "count")
class_builder.add_edge("count", END)
class_nodes = class_builder.compile(name="cluster_class_nodes")


# -- the Functional API: the seeds' screening lab ---------------------------------------------


@task
async def parse_resume_task(name: str) -> dict:
    await asyncio.sleep(0.05)
    return {"parsed": True}


@task
async def background_task(name: str) -> dict:
    started = time.time()
    await asyncio.sleep(0.15)
    return {"status": "Clear", "span": [started, time.time()]}


@task
async def reference_task(name: str) -> dict:
    started = time.time()
    await asyncio.sleep(0.1)
    return {"status": "Positive", "span": [started, time.time()]}


@entrypoint
async def functional_screening(name: str) -> dict:
    await parse_resume_task(name)
    background, reference = await asyncio.gather(background_task(name), reference_task(name))
    (b0, b1), (r0, r1) = background["span"], reference["span"]
    return {
        "decision": f"HIRED - Background: {background['status']}, Refs: {reference['status']}",
        "overlap": b0 < r1 and r0 < b1,  # both ran at the same time (possibly on two workers)
        "pids": [os.getpid()],
    }


GRAPHS = [fanout, mapreduce, custom, boom, siblings, cached, person, who, class_nodes, functional_screening,
          *pocketflow_graphs.GRAPHS]
