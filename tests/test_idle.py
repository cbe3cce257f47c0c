"""An idle pool waits without polling: a worker's blocking pop wakes at once on a job, however
long its idle wait, and a job taken from an idle queue wakes an idle peer, which runs the job
again if its holder dies. On a real redis-server, with the idle heartbeat and sweep an hour
apart: nothing here can be found by a poll."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypedDict

import pytest
from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.client import Client
from arqgraph.graph import END, START, StateGraph
from arqgraph.graph.compiled import CompiledStateGraph
from arqgraph.orchestrator.service import Orchestrator
from arqgraph.storage.connection import connect
from arqgraph.storage.queue import Sweep
from arqgraph.workers import worker as worker_module
from arqgraph.workers.lease import LeaseKeeper
from arqgraph.workers.worker import GraphWorker, build_worker
from tests.conftest import RedisServers
from tests.test_cluster import wait_until, within

HOUR = 3600.0


class Count(TypedDict, total=False):
    runs: int


@pytest.fixture
def an_hour_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle workers beat and sweep an hour apart: only a pop or a peer's word wakes them."""
    monkeypatch.setattr(protocol, "IDLE_HEARTBEAT_INTERVAL", HOUR)
    monkeypatch.setattr(worker_module, "IDLE_SWEEP", HOUR)


@pytest.fixture
async def redis(redis_servers: RedisServers) -> AsyncIterator[ArqRedis]:
    client = await connect(redis_servers.start().url)
    yield client
    await client.aclose()


def graph_of(node: Callable[[Count], Any], name: str) -> CompiledStateGraph:
    builder = StateGraph(Count)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    return builder.compile(name=name)


def counted_sweeps(monkeypatch: pytest.MonkeyPatch, worker: GraphWorker) -> list[int]:
    made = [0]
    sweep = worker.runner.jobs.sweep

    async def counting(read: int, most: int, while_listed: int) -> Sweep:
        made[0] += 1
        return await sweep(read, most, while_listed)

    monkeypatch.setattr(worker.runner.jobs, "sweep", counting)
    return made


def waiting(worker: GraphWorker) -> bool:
    """In its blocking pop, the queue empty at its last sweep."""
    return worker.popping is not None and worker.queue_idle


async def serve(redis: ArqRedis, graph: CompiledStateGraph,
                workers: list[GraphWorker]) -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
    orchestrator = Orchestrator(redis, [graph], sweep_interval=HOUR)
    await orchestrator.register()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(orchestrator.serve(stop)),
             *[asyncio.create_task(w.main()) for w in workers]]
    return stop, tasks


async def shut(stop: asyncio.Event, tasks: list[asyncio.Task[None]],
               workers: list[GraphWorker]) -> None:
    stop.set()
    for worker in workers:
        await worker.stop()
        for job in worker.tasks.values():
            job.cancel()
    await asyncio.gather(*tasks, *[j for w in workers for j in w.tasks.values()],
                         return_exceptions=True)
    for worker in workers:
        worker.threads_shutdown()


async def test_an_idle_worker_takes_a_job_as_it_is_queued(
    an_hour_idle: None, monkeypatch: pytest.MonkeyPatch, redis: ArqRedis,
) -> None:
    sweeps_before_run: list[int] = []
    graph = graph_of(lambda state: sweeps_before_run.append(made[0]) or {"runs": 1}, "idle_wake")
    worker = build_worker(redis, [graph], handle_signals=False, poll_delay=0.05)
    made = counted_sweeps(monkeypatch, worker)
    stop, tasks = await serve(redis, graph, [worker])
    try:
        await wait_until(lambda: _true(waiting(worker)), "the worker to wait for jobs")
        client = Client(redis)
        handle = await within(client.submit(graph.name, {}))
        assert await within(handle.result()) == {"runs": 1}
        assert sweeps_before_run == [1]  # the one at its start: its pop took the job
    finally:
        await shut(stop, tasks, [worker])


async def test_a_job_taken_from_an_idle_queue_wakes_a_peer_that_reruns_it_if_its_holder_dies(
    an_hour_idle: None, monkeypatch: pytest.MonkeyPatch, redis: ArqRedis,
) -> None:
    frozen = asyncio.Event()  # the first start of the node blocks until the end of the test
    starts: list[int] = []

    async def node(state: Count) -> Count:
        starts.append(1)
        if len(starts) == 1:
            await frozen.wait()
        return {"runs": len(starts)}

    graph = graph_of(node, "idle_peer")
    workers = [build_worker(redis, [graph], handle_signals=False, poll_delay=0.05, lease=1.0)
               for _ in range(2)]
    stop, tasks = await serve(redis, graph, workers)
    try:
        await wait_until(lambda: _true(all(waiting(w) for w in workers)),
                         "both workers to wait for jobs")
        handle = await within(Client(redis).submit(graph.name, {}))
        await wait_until(lambda: _true(len(starts) == 1), "the node to start")
        [holder] = [w for w in workers if w.tasks]
        assert holder.keeper is not None
        holder.keeper.stop()  # its lease lapses, as a worker killed -9 leaves it
        # the peer, woken by the take, sweeps until the lease lapses and runs the job again
        assert await within(handle.result()) == {"runs": 2}
    finally:
        frozen.set()
        await shut(stop, tasks, workers)


async def _true(value: bool) -> bool:
    return value


async def test_an_idle_workers_lease_keeper_wakes_to_renew_a_job_it_starts(
    an_hour_idle: None, monkeypatch: pytest.MonkeyPatch, redis: ArqRedis,
) -> None:
    """With nothing to renew, a worker's lease keeper waits an hour here; the job its worker
    then starts is still renewed within its lease, so the idle peer that the take woke never
    finds it lapsed and the node runs once."""
    release = asyncio.Event()
    starts: list[int] = []

    async def node(state: Count) -> Count:
        starts.append(1)
        await release.wait()
        return {"runs": len(starts)}

    graph = graph_of(node, "idle_lease")
    workers = [build_worker(redis, [graph], handle_signals=False, poll_delay=0.05, lease=1.0)
               for _ in range(2)]
    renewals: list[GraphWorker] = []
    for worker in workers:
        monkeypatch.setattr(worker, "keeper", LeaseKeeper(worker, 1.0))
        tick = worker.keeper.tick

        async def counted(redis: Any, worker: GraphWorker = worker, tick: Any = tick) -> bool:
            held = await tick(redis)
            if held:
                renewals.append(worker)
            return held

        monkeypatch.setattr(worker.keeper, "tick", counted)
        worker.keeper.start()
    stop, tasks = await serve(redis, graph, workers)
    try:
        await wait_until(lambda: _true(all(waiting(w) and w.keeper is not None and w.keeper.idle
                                           for w in workers)),
                         "both workers and their lease keepers to wait idle")
        handle = await within(Client(redis).submit(graph.name, {}))
        await wait_until(lambda: _true(len(renewals) >= 6), "the job's lease to be renewed "
                         "for twice its length")
        release.set()
        assert await within(handle.result()) == {"runs": 1}
        assert starts == [1]
    finally:
        release.set()
        for worker in workers:
            assert worker.keeper is not None
            worker.keeper.stop()
        await shut(stop, tasks, workers)
