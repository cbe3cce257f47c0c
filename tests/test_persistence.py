"""Threads, cancellation, retries and retention on the embedded default (the cluster code over an
in-memory Redis). The LangGraph-visible behaviour of threads is compared with LangGraph itself
in tests/test_differential_threads.py; these tests cover what LangGraph has no equivalent for.
"""

from __future__ import annotations

import asyncio
import operator
import time
from typing import Annotated, Any, TypedDict

import pytest

from arqgraph import protocol
from arqgraph.checkpoint.memory import InMemorySaver
from arqgraph.embedded import EmbeddedCluster
from arqgraph.errors import NodeTimeoutError, RunCancelledError
from arqgraph.graph import END, START, StateGraph
from arqgraph.types import RetryPolicy, Send

LIMIT = 20.0


class State(TypedDict, total=False):
    x: int
    log: Annotated[list[str], operator.add]


def thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


async def test_cancel_reaches_the_running_node_and_keeps_the_checkpoint() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()
    release = asyncio.Event()

    async def first(state: State) -> dict[str, Any]:
        return {"log": ["first"]}

    async def slow(state: State) -> dict[str, Any]:
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.set()  # the node can clean up
            raise
        return {"log": ["slow"]}

    builder = StateGraph(State)
    builder.add_node("first", first)
    builder.add_node("slow", slow)
    builder.add_edge(START, "first")
    builder.add_edge("first", "slow")
    builder.add_edge("slow", END)
    graph = builder.compile(name="cancellable")

    async with EmbeddedCluster([graph]) as cluster:
        client = cluster.client
        handle = await client.submit(graph.name, {"x": 1}, thread("c1"))
        await asyncio.wait_for(started.wait(), LIMIT)
        await handle.cancel()
        await asyncio.wait_for(cancelled.wait(), LIMIT)
        with pytest.raises(RunCancelledError):
            await asyncio.wait_for(handle.result(), LIMIT)
        assert await handle.status() == "cancelled"

        state = await client.get_state(thread("c1"))  # the last checkpoint stays readable
        assert state.values == {"x": 1, "log": ["first"]} and state.next == ("slow",)

        # The thread is free again: resuming runs the cancelled node from its start.
        release.set()
        resumed = await client.submit(graph.name, None, thread("c1"))
        assert await asyncio.wait_for(resumed.result(), LIMIT) == {"x": 1, "log": ["first", "slow"]}


async def test_retry_waits_do_not_hold_a_worker_slot() -> None:
    """One worker slot: while a failed node waits for its retry, another run's node runs."""
    order: list[str] = []
    other_ran = asyncio.Event()

    async def flaky(state: State) -> dict[str, Any]:
        order.append("flaky")
        if order.count("flaky") == 1:
            raise ConnectionError("upstream hiccup")
        return {"log": ["flaky"]}

    async def quick(state: State) -> dict[str, Any]:
        order.append("quick")
        other_ran.set()
        return {"log": ["quick"]}

    retry = RetryPolicy(initial_interval=0.3, jitter=False, max_attempts=2)
    builder = StateGraph(State)
    builder.add_node("flaky", flaky, retry_policy=retry)
    builder.add_edge(START, "flaky")
    flaky_graph = builder.compile(name="flaky")
    builder = StateGraph(State)
    builder.add_node("quick", quick)
    builder.add_edge(START, "quick")
    quick_graph = builder.compile(name="quick")

    async with EmbeddedCluster([flaky_graph, quick_graph], concurrency=1) as cluster:
        slow_run = await cluster.client.submit(flaky_graph.name, {"x": 1})

        async def first_failure() -> None:
            while order.count("flaky") < 1:
                await asyncio.sleep(0.005)

        await asyncio.wait_for(first_failure(), LIMIT)
        quick_run = await cluster.client.submit(quick_graph.name, {"x": 2})
        assert await asyncio.wait_for(quick_run.result(), LIMIT) == {"x": 2, "log": ["quick"]}
        assert await asyncio.wait_for(slow_run.result(), LIMIT) == {"x": 1, "log": ["flaky"]}
    assert order == ["flaky", "quick", "flaky"]


async def test_node_timeout_is_retried_under_the_node_policy() -> None:
    calls: list[int] = []

    async def sleepy(state: State) -> dict[str, Any]:
        calls.append(1)
        if len(calls) < 2:
            await asyncio.sleep(30)
        return {"log": ["awake"]}

    builder = StateGraph(State)
    builder.add_node("sleepy", sleepy, timeout=0.05,
                     retry_policy=RetryPolicy(initial_interval=0.01, jitter=False))
    builder.add_edge(START, "sleepy")
    graph = builder.compile(name="sleepy")
    assert await asyncio.wait_for(graph.ainvoke({"x": 1}), LIMIT) == {"x": 1, "log": ["awake"]}
    assert len(calls) == 2

    builder = StateGraph(State)
    builder.add_node("sleepy", sleepy, timeout=0.05)  # no retry policy: the timeout fails the run
    builder.add_edge(START, "sleepy")
    calls.clear()
    with pytest.raises(NodeTimeoutError, match="Node 'sleepy' exceeded its run timeout of 0.050s"
                       ) as failed:
        await asyncio.wait_for(builder.compile().ainvoke({"x": 1}), LIMIT)
    # Rebuilt from the wire with its fields, as LangGraph raises it.
    assert (failed.value.node, failed.value.kind) == ("sleepy", "run")
    assert failed.value.timeout == failed.value.run_timeout == 0.05
    assert failed.value.idle_timeout is None and failed.value.elapsed >= 0.05


async def test_retention_threads_kept_until_deleted_runs_expire() -> None:
    def step(state: State) -> dict[str, Any]:
        return {"log": ["step"]}

    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    graph = builder.compile(name="kept", checkpointer=InMemorySaver())

    async with EmbeddedCluster([graph]) as cluster:
        client, redis = cluster.client, cluster.redis
        kept = await client.submit(graph.name, {"x": 1}, thread("keep-me"))
        await asyncio.wait_for(kept.result(), LIMIT)
        once = await client.submit(graph.name, {"x": 2})
        await asyncio.wait_for(once.result(), LIMIT)

        async def ttls(run_id: str) -> dict[str, int]:
            tag = protocol.tag_of(run_id)
            keys = [protocol.run_key(run_id), protocol.events_key(run_id),
                    protocol.checkpoints_key(tag), protocol.history_key(tag),
                    protocol.thread_key(tag)]
            return {key.split(":")[2]: await redis.ttl(key) for key in keys}

        week = 7 * 24 * 3600
        kept_ttls, once_ttls = await ttls(kept.run_id), await ttls(once.run_id)
        # A finished run's record and events expire after the retention (a week by default)...
        assert 0 < kept_ttls["run"] <= week and 0 < kept_ttls["events"] <= week
        # ...a thread's checkpoints are kept until the thread is deleted...
        assert kept_ttls["checkpoints"] == kept_ttls["history"] == kept_ttls["thread"] == -1
        # ...and a run without a thread_id has a thread of its own, expiring with it.
        assert all(0 < ttl <= week for ttl in once_ttls.values()), once_ttls
        # Every key of that thread expires, its steps' writes and claims included.
        once_keys = await redis.keys(f"{protocol.PREFIX}:{{{protocol.tag_of(once.run_id)}}}:*")
        assert any(b":writes:" in k for k in once_keys) and any(b":claims:" in k for k in once_keys)
        assert [k for k in once_keys if await redis.ttl(k) == -1] == []

        await client.delete_thread("keep-me")
        assert await client.get_state_history(thread("keep-me")) == []
        tag = protocol.thread_tag("keep-me")
        assert await redis.keys(f"{protocol.PREFIX}:{{{tag}}}:checkpoints") == []
        assert await redis.keys(f"{protocol.PREFIX}:{{{tag}}}:writes:*") == []


async def test_one_run_at_a_time_per_thread() -> None:
    gate = asyncio.Event()

    async def wait(state: State) -> dict[str, Any]:
        await gate.wait()
        return {"log": ["waited"]}

    builder = StateGraph(State)
    builder.add_node("wait", wait)
    builder.add_edge(START, "wait")
    graph = builder.compile(name="busy")
    async with EmbeddedCluster([graph]) as cluster:
        first = await cluster.client.submit(graph.name, {"x": 1}, thread("busy"))
        with pytest.raises(RuntimeError, match="thread 'busy' is busy with run"):
            await cluster.client.submit(graph.name, {"x": 2}, thread("busy"))
        gate.set()
        assert await asyncio.wait_for(first.result(), LIMIT) == {"x": 1, "log": ["waited"]}
        second = await cluster.client.submit(graph.name, {"x": 2}, thread("busy"))
        assert await asyncio.wait_for(second.result(), LIMIT) == {"x": 2,
                                                                  "log": ["waited", "waited"]}


async def test_rate_limited_calls_do_not_bunch_after_a_stalled_worker() -> None:
    """A worker whose loop stalls (here a node blocking it for 1.5 s) must not then start all
    its overdue rate-limited calls at once."""
    starts: list[float] = []

    async def call_api(arg: Any) -> dict[str, Any]:
        starts.append(time.time())
        return {"log": ["call"]}

    async def hog(arg: Any) -> dict[str, Any]:
        time.sleep(1.5)  # noqa: ASYNC251 - blocking the worker's loop on purpose
        return {}

    builder = StateGraph(State)
    builder.add_node("call_api", call_api, rate_limit="10/s")
    builder.add_node("hog", hog)
    builder.add_conditional_edges(
        START, lambda s: [Send("call_api", {}) for _ in range(25)] + [Send("hog", {})],
        ["call_api", "hog"])
    result = await asyncio.wait_for(builder.compile().ainvoke({"x": 1}), 30)
    assert len(result["log"]) == 25
    starts.sort()
    busiest = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    assert busiest <= 11, f"{busiest} calls started within one second (limit 10/s)"


async def test_a_failing_task_resumed_again_and_again_keeps_failing_as_itself() -> None:
    """Each resume of a thread whose task fails runs it again and fails with its own error:
    the attempts that ended with an outcome do not count toward the crash limit (they used to
    turn the fifth resume into a TaskLostError)."""

    def failing(state: State) -> dict[str, Any]:
        raise ValueError("still failing")

    builder = StateGraph(State)
    builder.add_node("failing", failing)
    builder.add_edge(START, "failing")
    graph = builder.compile(checkpointer=InMemorySaver())
    config = thread("again")
    for attempt in range(8):
        with pytest.raises(ValueError, match="still failing"):
            await asyncio.wait_for(graph.ainvoke({"x": 1} if attempt == 0 else None, config),
                                   LIMIT)
