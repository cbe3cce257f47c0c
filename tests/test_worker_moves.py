"""A worker that ran a step's only task moves the run on with its post (`arqgraph.storage.moves`): the
orchestrator starts runs, ends them, and moves the steps of several tasks.

Fast tests on the in-memory Redis; tests/test_orchestrator_crash.py kills a worker in its move.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

import pytest

from arqgraph import protocol
from arqgraph.embedded import EmbeddedCluster
from arqgraph.errors import RunCancelledError
from arqgraph.graph import END, START, StateGraph
from arqgraph.graph.compiled import CompiledStateGraph
from arqgraph.storage import queue as queue_module
from arqgraph.types import Send

LIMIT = 10.0


class ChainState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def chain(name: str, nodes: list[str], wait: asyncio.Event | None = None) -> CompiledStateGraph:
    """START -> nodes[0] -> ... -> END; the first node waits for `wait`, if given."""

    def node(label: str) -> Any:
        async def run(state: ChainState) -> dict[str, Any]:
            if wait is not None and label == nodes[0]:
                await wait.wait()
            return {"log": [label]}
        return run

    builder = StateGraph(ChainState)
    for label in nodes:
        builder.add_node(label, node(label))
    builder.add_edge(START, nodes[0])
    for a, b in zip(nodes, nodes[1:], strict=False):
        builder.add_edge(a, b)
    builder.add_edge(nodes[-1], END)
    return builder.compile(name=name)


def thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


async def test_workers_move_a_chain_on_and_end_it_once_the_orchestrator_started_it() -> None:
    graph = chain("moved", ["a", "b", "c", "d", "e"])
    async with EmbeddedCluster([graph]) as cluster:
        told: list[str] = []  # the runs the orchestrator was told of (not found by its sweep)
        poke = cluster.orchestrator.poke

        def counting_poke(run_id: str, swept: bool = False) -> None:
            if not swept:
                told.append(run_id)
            poke(run_id, swept)

        cluster.orchestrator.poke = counting_poke  # type: ignore[method-assign]
        handle = await cluster.client.submit("moved", {"log": []}, thread("m1"))
        assert await asyncio.wait_for(handle.result(), LIMIT) == {"log": ["a", "b", "c", "d", "e"]}
        # Told once, that the run was submitted; the four moves after its start and its end
        # were the workers' (the end retires the run, with the orchestrator's retention).
        assert told == [handle.run_id]
        assert not await cluster.redis.sismember(protocol.active_key("moved"), handle.run_id)
        retention = cluster.orchestrator.retention
        assert 0 < await cluster.redis.ttl(protocol.run_key(handle.run_id)) <= retention
        history = await cluster.client.get_state_history(thread("m1"))
        assert [s.next for s in history] == [(), ("e",), ("d",), ("c",), ("b",), ("a",),
                                             ("__start__",)]
        events = [(mode, data) async for mode, data in handle.stream(["values"])]
        assert [data["log"] for _, data in events] == [
            [], ["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d"],
            ["a", "b", "c", "d", "e"]]


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_the_worker_that_moves_a_run_on_runs_the_next_steps_job_itself(
    concurrency: int,
) -> None:
    """The post that moves a chain on takes the next step's job for its worker (no other worker
    wakes up, nothing goes through the ready list), which runs it in the posting job's slot:
    even a worker of one slot runs a whole chain so, and gives every slot back at the end."""
    graph = chain("held", ["a", "b", "c", "d", "e"])
    async with EmbeddedCluster([graph], concurrency=concurrency) as cluster:
        worker, runner = cluster.worker, cluster.worker.runner
        taken: list[str] = []  # the nodes of the jobs taken from the ready list
        handed: list[str] = []  # those of the jobs a post took
        take, hand_over = runner.take, runner.hand_over
        assert hand_over is not None

        async def counting_take(job_ids: Any, lease: float, most: int) -> Any:
            jobs = await take(job_ids, lease, most)
            taken.extend(j.job_id.rsplit(":", 1)[-1] for j in jobs)
            return jobs

        def counting_hand_over(posted: str, job: Any) -> None:
            handed.append(job.job_id.rsplit(":", 1)[-1])
            hand_over(posted, job)

        runner.take = counting_take  # type: ignore[method-assign]
        runner.hand_over = counting_hand_over
        handle = await cluster.client.submit("held", {"log": []}, thread("h1"))
        assert await asyncio.wait_for(handle.result(), LIMIT) == {"log": ["a", "b", "c", "d", "e"]}
        assert taken == ["a"] and handed == ["b", "c", "d", "e"]
        while worker.tasks:  # (the last job's arq bookkeeping)
            await asyncio.sleep(0.01)
        assert worker.job_counter == 0 and not worker.handed
        for _ in range(concurrency):  # every slot free again
            await asyncio.wait_for(worker.sem.acquire(), LIMIT)


async def test_the_tasks_of_a_wider_next_step_are_all_listed_to_start_together() -> None:
    """A move on to a step of several tasks takes none of their jobs for the moving worker:
    none starts ahead of its siblings (they are listed as ready and taken together)."""
    builder = StateGraph(ChainState)
    for label in ("a", "b", "c"):
        builder.add_node(label, lambda state, label=label: {"log": [label]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("a", "c")
    builder.add_edge(["b", "c"], END)
    async with EmbeddedCluster([builder.compile(name="wider")]) as cluster:
        runner = cluster.worker.runner
        hand_over = runner.hand_over
        assert hand_over is not None
        handed: list[str] = []

        def counting_hand_over(posted: str, job: Any) -> None:
            handed.append(job.job_id)
            hand_over(posted, job)

        runner.hand_over = counting_hand_over
        handle = await cluster.client.submit("wider", {"log": []}, thread("w1"))
        result = await asyncio.wait_for(handle.result(), LIMIT)
        assert sorted(result["log"]) == ["a", "b", "c"] and handed == []


async def test_a_stopping_worker_leaves_the_next_job_to_others() -> None:
    """Once its worker stops taking jobs, a post that moves a run on lists the next step's job
    as ready, for other workers, instead of taking it."""
    release = asyncio.Event()
    graph = chain("deploy", ["a", "b"], wait=release)
    async with EmbeddedCluster([graph]) as cluster:
        runner = cluster.worker.runner
        handle = await cluster.client.submit("deploy", {"log": []}, thread("d1"))
        while not runner.running:  # `a` runs
            await asyncio.sleep(0.01)
        await cluster.worker.stop()
        assert runner.hand_over is None
        release.set()
        ready = protocol.ready_key(cluster.worker.queue_name)
        while await handle.status() == "running" and not any(
                i.endswith(b":b") for i in await cluster.redis.lrange(ready, 0, -1)):
            await asyncio.sleep(0.01)
        state = await cluster.client.get_state(thread("d1"))
        assert state.next == ("b",) and state.values == {"log": ["a"]}
        assert [i for i in await cluster.redis.lrange(ready, 0, -1) if i != b"-"] == [
            protocol.job_id(handle.run_id, state.config["configurable"]["checkpoint_id"],
                            state.tasks[0].id).encode()]


async def test_a_job_taken_as_its_worker_stops_is_given_back() -> None:
    """A worker that began to stop while a post took the next job for it does not run it: the
    job goes back to the ready list at once (not when its lease runs out), its task's start not
    counted as lost."""
    graph = chain("given_back", ["a", "b"])
    async with EmbeddedCluster([graph]) as cluster:
        worker, runner = cluster.worker, cluster.worker.runner
        hand_over = runner.hand_over
        assert hand_over is not None
        given: list[str] = []

        def stopping_hand_over(posted: str, job: Any) -> None:
            worker.stopping, worker.allow_pick_jobs = True, False  # (a stop during the post)
            given.append(job.job_id)
            hand_over(posted, job)

        runner.hand_over = stopping_hand_over
        handle = await cluster.client.submit("given_back", {"log": []}, thread("g1"))
        ready = protocol.ready_key(worker.queue_name)
        async with asyncio.timeout(LIMIT):
            while not given or given[0].encode() not in await cluster.redis.lrange(ready, 0, -1):
                await asyncio.sleep(0.01)
        assert not worker.handed and given[0] not in worker.tasks
        assert not await cluster.redis.exists(protocol.lease_key(given[0]))
        task = protocol.task_of_job(given[0])
        assert task is not None and task[2].endswith(":b")
        claims = protocol.claims_key(protocol.tag_of(handle.run_id), task[1])
        assert await cluster.redis.hget(claims, f"{task[2]}:ended") == b"1"  # (not lost)


async def test_a_move_after_a_cancel_is_not_committed() -> None:
    """Cancelled while its only task runs, the run does not move on to the next step (the
    commit's compare-and-set covers the cancel too), and ends cancelled at that step."""
    release = asyncio.Event()
    graph = chain("cancelled_move", ["first", "second"], wait=release)
    async with EmbeddedCluster([graph]) as cluster:
        handle = await cluster.client.submit("cancelled_move", {"log": []}, thread("c1"))
        while await handle.status() != "running":
            await asyncio.sleep(0.01)
        await handle.cancel()
        release.set()
        with pytest.raises(RunCancelledError):
            await asyncio.wait_for(handle.result(), LIMIT)
        state = await cluster.client.get_state(thread("c1"))
        assert state.metadata is not None and state.metadata["step"] == 0  # (not moved on)
        # (its node cancelled, or finished first: then its write shows, as LangGraph's)
        assert (state.next, state.values) in ((("first",), {"log": []}),
                                              ((), {"log": ["first"]}))


class FanState(TypedDict, total=False):
    n: int
    results: Annotated[list[int], operator.add]


async def test_a_fan_out_of_more_tasks_than_one_enqueue_is_left_to_the_orchestrator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step that sends more tasks than one call enqueues is committed apart from its jobs:
    the worker does not plan it (the orchestrator would apply its writes again)."""
    monkeypatch.setattr(queue_module, "ENQUEUE_CHUNK", 2)

    def fan(state: FanState) -> list[Send]:
        return [Send("work", {"n": i}) for i in range(state["n"])]

    builder = StateGraph(FanState)
    builder.add_node("plan", lambda state: {})
    builder.add_node("work", lambda state: {"results": [state["n"] * 10]})
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan, ["work"])
    builder.add_edge("work", END)
    graph = builder.compile(name="wide")
    async with EmbeddedCluster([graph]) as cluster:
        planned: list[int] = []
        planner = cluster.worker.runner.planner
        plan = planner.plan

        def counting_plan(graph: Any, record: Any, outcomes: Any, hold: bool = False) -> Any:
            planned.append(record.checkpoint.step)
            return plan(graph, record, outcomes, hold)

        planner.plan = counting_plan  # type: ignore[method-assign]
        for n, moved_by_worker in ((2, [0]), (3, [])):
            planned.clear()
            handle = await cluster.client.submit("wide", {"n": n})
            result = await asyncio.wait_for(handle.result(), LIMIT)
            assert result == {"n": n, "results": [i * 10 for i in range(n)]}
            assert planned == moved_by_worker  # (the step of the `work` tasks: several tasks)
