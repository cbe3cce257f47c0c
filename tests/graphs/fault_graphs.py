"""Graphs for the fault tests (tests/test_worker_faults.py), served by real worker processes.

Their nodes report to a probe Redis whose URL travels in the state (`probe`), under keys that
start with the run's `tag`:
- `<tag>:starts:<item>` counts the starts of the task for `item`, `<tag>:holder:<item>` holds the
  pid of the process that started it last, and `<tag>:started` lists items as they start;
- gated nodes wait until `<tag>:gate` exists, so a test can act while they are running.
"""

import asyncio
import operator
import os
import time
from typing import Annotated, Any, TypedDict

import redis.asyncio

from arqgraph.errors import SerializationError
from arqgraph.func import entrypoint, task
from arqgraph.graph import END, START, StateGraph
from arqgraph.types import RetryPolicy, Send, interrupt


class ProbeState(TypedDict, total=False):
    probe: str
    tag: str
    items: list[int]
    block: float
    size: int
    done: Annotated[list[int], operator.add]
    total: int
    blob: str


async def record_start(probe: str, tag: str, item: int) -> redis.asyncio.Redis:
    r = redis.asyncio.Redis.from_url(probe)
    async with r.pipeline(transaction=True) as pipe:
        pipe.incr(f"{tag}:starts:{item}")
        pipe.set(f"{tag}:holder:{item}", os.getpid())
        pipe.rpush(f"{tag}:started", item)
        await pipe.execute()
    return r


# -- a fan-out whose tasks wait for the test's go ----------------------------------------------


def fan(state: ProbeState) -> list[Send]:
    return [Send("work", {"probe": state["probe"], "tag": state["tag"], "item": i})
            for i in state["items"]]


async def work(arg: dict[str, Any]) -> dict[str, Any]:
    r = await record_start(arg["probe"], arg["tag"], arg["item"])
    try:
        while not await r.exists(f"{arg['tag']}:gate"):
            await asyncio.sleep(0.02)
    finally:
        await r.aclose()
    return {"done": [arg["item"]]}


def reduce(state: ProbeState) -> dict[str, Any]:
    return {"total": sum(state["done"])}


gated = StateGraph(ProbeState)
gated.add_node("work", work)
gated.add_node("reduce", reduce)
gated.add_conditional_edges(START, fan, ["work"])
gated.add_edge("work", "reduce")
gated.add_edge("reduce", END)
gated_fanout = gated.compile(name="gated_fanout")


def expected_gated(state: ProbeState) -> dict[str, Any]:
    items = state["items"]
    return {**state, "done": list(items), "total": sum(items)}


# -- a node that blocks its worker's event loop ------------------------------------------------


async def blocker(state: ProbeState) -> dict[str, Any]:
    r = await record_start(state["probe"], state["tag"], 0)
    await r.aclose()
    time.sleep(state["block"])  # noqa: ASYNC251 - blocking the loop on purpose
    return {"done": [0]}


blocking = StateGraph(ProbeState)
blocking.add_node("blocker", blocker)
blocking.add_edge(START, "blocker")
blocking.add_edge("blocker", END)
blocking_graph = blocking.compile(name="blocking")


# -- a node that always fails with a retryable error -------------------------------------------


async def flaky(state: ProbeState) -> dict[str, Any]:
    r = await record_start(state["probe"], state["tag"], 0)
    await r.aclose()
    raise ConnectionError(f"upstream of run {state['tag']} is down")


poison = StateGraph(ProbeState)
poison.add_node("flaky", flaky, retry_policy=RetryPolicy(
    max_attempts=3, initial_interval=0.05, backoff_factor=2.0, jitter=False))
poison.add_edge(START, "flaky")
poison.add_edge("flaky", END)
poison_graph = poison.compile(name="poison")


# -- a node whose update is too large -----------------------------------------------------------


def big(state: ProbeState) -> dict[str, Any]:
    return {"blob": "x" * state["size"]}


large = StateGraph(ProbeState)
large.add_node("big", big)
large.add_edge(START, "big")
large.add_edge("big", END)
large_graph = large.compile(name="large_update")


GRAPHS = [gated_fanout, blocking_graph, poison_graph, large_graph]


# -- a graph that asks a human --------------------------------------------------------------------


def draft(state: ProbeState) -> dict[str, Any]:
    return {"done": [1]}


def review(state: ProbeState) -> dict[str, Any]:
    verdict = interrupt({"question": "approve?", "done": state["done"]})
    return {"done": [2 if verdict == "yes" else -2]}


asking = StateGraph(ProbeState)
asking.add_node("draft", draft)
asking.add_node("review", review)
asking.add_edge(START, "draft")
asking.add_edge("draft", "review")
asking.add_edge("review", END)
asking_graph = asking.compile(name="asking")

GRAPHS.append(asking_graph)


# -- nodes with cluster-wide limits ---------------------------------------------------------------

RUNNING_MAX = """
local now = redis.call('INCR', KEYS[1])
if now > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], now) end
return now
"""


def fan_limited(state: ProbeState) -> list[Send]:
    return [Send(state["tag"].split(":")[0], {"probe": state["probe"], "tag": state["tag"],
                                               "item": i}) for i in state["items"]]


async def guarded(arg: dict[str, Any]) -> dict[str, Any]:
    """At most 3 of these run at once across all workers: it records how many do."""
    r = redis.asyncio.Redis.from_url(arg["probe"])
    tag = arg["tag"]
    try:
        await r.eval(RUNNING_MAX, 2, f"{tag}:running", f"{tag}:max")
        await r.sadd(f"{tag}:pids", os.getpid())
        await asyncio.sleep(0.05)
        await r.decr(f"{tag}:running")
    finally:
        await r.aclose()
    return {"done": [arg["item"]]}


async def paced(arg: dict[str, Any]) -> dict[str, Any]:
    """At most 20 calls a second across all workers: it records when each starts (Redis time)."""
    r = redis.asyncio.Redis.from_url(arg["probe"])
    try:
        seconds, micros = await r.time()
        await r.rpush(f"{arg['tag']}:starts", seconds + micros / 1e6)
        await r.sadd(f"{arg['tag']}:pids", os.getpid())
    finally:
        await r.aclose()
    return {"done": [arg["item"]]}


limits = StateGraph(ProbeState)
limits.add_node("guarded", guarded, concurrency=3)
limits.add_node("paced", paced, rate_limit="20/s")
limits.add_conditional_edges(START, fan_limited, ["guarded", "paced"])
limits.add_edge("guarded", END)
limits.add_edge("paced", END)
limits_graph = limits.compile(name="limits")

GRAPHS.append(limits_graph)

# a run's own limit (`max_concurrency` in its config), for a node with none of its own
run_limited = StateGraph(ProbeState)
run_limited.add_node("free", guarded)
run_limited.add_conditional_edges(START, fan_limited, ["free"])
run_limited.add_edge("free", END)
run_limited_graph = run_limited.compile(name="run_limited")

GRAPHS.append(run_limited_graph)


async def solo(arg: dict[str, Any]) -> dict[str, Any]:
    """One at a time on the whole cluster; waits for the gate like `work`."""
    return await work(arg)


def fan_solo(state: ProbeState) -> list[Send]:
    return [Send("solo", {"probe": state["probe"], "tag": state["tag"], "item": i})
            for i in state["items"]]


single = StateGraph(ProbeState)
single.add_node("solo", solo, concurrency=1)
single.add_conditional_edges(START, fan_solo, ["solo"])
single.add_edge("solo", END)
single_graph = single.compile(name="single_slot")

GRAPHS.append(single_graph)


# -- a gated fan-out inside a subgraph, which a parent task runs ---------------------------------

PREPARED = 100  # the probe item of the subgraph's first node
DELEGATED = 200  # the probe item of the parent task that runs the subgraph


async def prepare(state: ProbeState) -> dict[str, Any]:
    r = await record_start(state["probe"], state["tag"], PREPARED)
    await r.aclose()
    return {"done": [PREPARED]}


inner = StateGraph(ProbeState)
inner.add_node("prepare", prepare)
inner.add_node("work", work)
inner.add_node("reduce", reduce)
inner.add_edge(START, "prepare")
inner.add_conditional_edges("prepare", fan, ["work"])
inner.add_edge("work", "reduce")
inner_graph = inner.compile(name="gated_inner")


async def delegate(state: ProbeState) -> dict[str, Any]:
    """Runs the subgraph; the probe tells which worker holds this parent task."""
    r = await record_start(state["probe"], state["tag"], DELEGATED)
    await r.aclose()
    output = await inner_graph.ainvoke({**state, "done": []})
    return {"done": output["done"], "total": output["total"]}


outer = StateGraph(ProbeState)
outer.add_node("delegate", delegate)
outer.add_edge(START, "delegate")
subgraph_fanout = outer.compile(name="subgraph_fanout")
GRAPHS.append(subgraph_fanout)


def expected_subgraph(state: ProbeState) -> dict[str, Any]:
    items = state["items"]
    return {**state, "done": [PREPARED, *items], "total": PREPARED + sum(items)}


# -- a task whose result cannot cross the wire (tests/test_poison.py) ----------------------------

JUNK_TRIES: list[str] = []  # the attempts at `make_junk` in this process


@task(retry_policy=RetryPolicy(max_attempts=2, initial_interval=0.01, jitter=False,
                               retry_on=SerializationError))
async def make_junk(key: str) -> dict[str, Any]:
    JUNK_TRIES.append(key)
    return {key: object()}


@entrypoint()
async def junk_task(key: str) -> dict[str, Any]:
    return await make_junk(key)


GRAPHS.append(junk_task)
