"""Integration tests on a real redis-server with real, separate orchestrator and worker processes.

The main cluster (module scope): one orchestrator and two workers (`--poll-delay 0.05`) serving
`tests.graphs.cluster_graphs:GRAPHS` on the default queue of Redis database 0. Two tests start
processes of their own: the graph-version mismatch (an orchestrator and a worker on a queue of
their own) and the SIGTERM test (a fresh trio on database 1).

Expected values are computed independently: by the plain-Python `expected_*` functions of the
graph module and by running the same graph embedded (`graph.ainvoke`/`astream`, in this process
over fakeredis). Every wait is on a condition with a bound; nothing sleeps to synchronize.
"""

from __future__ import annotations

import asyncio
import pickle
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import pydantic
import pytest
import redis
import redis.asyncio

from arqgraph import protocol
from arqgraph.client import Client, SyncClient
from arqgraph.errors import (
    GraphMismatchError,
    InvalidInputError,
    RunCancelledError,
    SerializationError,
    UnknownGraphError,
)
from tests.conftest import ArqProcess, ArqProcesses, RedisServer, wait_for
from tests.graphs import cluster_graphs as graphs
from tests.graphs import cluster_graphs_v2 as graphs_v2

T = TypeVar("T")

MAIN_SPEC = "tests.graphs.cluster_graphs:GRAPHS"
# --log-jobs: arq's line per job (off by default), which test_both_workers_execute_jobs reads
WORKER_FLAGS = ("--poll-delay", "0.05", "--concurrency", "8", "--shutdown-grace", "5", "--log-jobs")
ORCHESTRATOR_FLAGS = ("--sweep-interval", "1")
MAIN_NAMES = [g.name for g in graphs.GRAPHS]
AWAIT_LIMIT = 30.0  # the bound of any single wait for a run
STARTUP_LIMIT = 30.0  # the bound for a process to come up (2 slow cores, cold imports)


async def within(awaitable: Awaitable[T], seconds: float = AWAIT_LIMIT) -> T:
    return await asyncio.wait_for(awaitable, seconds)


async def collect(agen: AsyncIterator[T], seconds: float = AWAIT_LIMIT) -> list[T]:
    async def drain() -> list[T]:
        return [item async for item in agen]

    return await within(drain(), seconds)


async def wait_until(
    condition: Callable[[], Awaitable[Any]], what: str, seconds: float = AWAIT_LIMIT,
    interval: float = 0.02,
) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def current_outcomes(r: redis.asyncio.Redis, run_id: str) -> list[bytes]:
    """Ids of the tasks of the run's current step that have posted an outcome."""
    checkpoint_id = (await r.hget(protocol.run_key(run_id), "checkpoint_id")).decode()
    return list(await r.hkeys(protocol.writes_key(protocol.tag_of(run_id), checkpoint_id)))


def url_for_db(server: RedisServer, db: int) -> str:
    return f"redis://127.0.0.1:{server.port}/{db}"


def wait_registered(url: str, names: Sequence[str], timeout: float = STARTUP_LIMIT) -> None:
    """Wait until an orchestrator has registered every graph of `names` in Redis at `url`."""
    client = redis.Redis.from_url(url)
    try:
        def registered() -> bool:
            keys: list[bytes] = client.hkeys(protocol.GRAPHS_KEY)  # type: ignore[assignment]
            known = {k.decode() for k in keys}
            return set(names) <= known

        wait_for(registered, timeout, f"graphs {list(names)} to be registered at {url}")
    finally:
        client.close()


def start_pool(
    procs: ArqProcesses, url: str, *, workers: int = 2, prefix: str = ""
) -> tuple[ArqProcess, list[ArqProcess]]:
    orchestrator = procs.orchestrator(MAIN_SPEC, redis=url, extra=ORCHESTRATOR_FLAGS,
                                      name=f"{prefix}orchestrator")
    pool = [procs.worker(MAIN_SPEC, redis=url, extra=WORKER_FLAGS, name=f"{prefix}worker{i}")
            for i in range(1, workers + 1)]
    try:
        wait_registered(url, MAIN_NAMES)
        for worker in pool:
            worker.wait_for_output("worker serving graphs", STARTUP_LIMIT)
    except AssertionError as exc:
        stacks = "\n".join(proc.hung() for proc in (orchestrator, *pool))
        raise AssertionError(f"{exc}\nstacks and logs of the processes:\n{stacks}") from None
    return orchestrator, pool


@dataclass
class Cluster:
    url: str
    orchestrator: ArqProcess
    workers: list[ArqProcess]

    @property
    def processes(self) -> list[ArqProcess]:
        return [self.orchestrator, *self.workers]

    def assert_alive(self) -> None:
        for proc in self.processes:
            assert proc.alive(), f"{proc.name} exited with {proc.process.returncode}"


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[Cluster]:
    orchestrator, workers = start_pool(arq_processes, redis_server.url)
    yield Cluster(redis_server.url, orchestrator, workers)
    for proc in [orchestrator, *workers]:
        proc.terminate()


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[Client]:
    producer = await within(Client.connect(cluster.url), 10)
    try:
        yield producer
    finally:
        await producer.close()


# -- comparing event streams -------------------------------------------------------------------


def fanout_phase(mode: str, payload: Any) -> float:
    """Superstep of a cluster_fanout event: concurrent `left`/`right` share phase 2."""
    if mode == "updates":
        return {"prep": 1, "left": 2, "right": 2, "join": 3}[next(iter(payload))]
    if mode == "values":
        return 3.5 if "total" in payload else 2.5 if "b" in payload else (
            1.5 if "a" in payload else 0.5)
    raise AssertionError(f"unexpected {mode} event {payload!r}")


def mapreduce_phase(mode: str, payload: Any) -> float:
    """Superstep of a cluster_mapreduce event: the Sent `square` tasks run concurrently."""
    if mode == "updates":
        return {"square": 1, "reduce": 2}[next(iter(payload))]
    if mode == "values":
        return 2.5 if "total" in payload else 1.5 if payload.get("squares") else 0.5
    raise AssertionError(f"unexpected {mode} event {payload!r}")


def canonical(
    events: list[Any], mode: str | list[str], phase: Callable[[str, Any], float] | None
) -> list[tuple[str, Any]]:
    """Events as (mode, payload); with `phase`, checked to be in phase order and sorted inside
    each phase (the order of concurrent tasks is not defined), otherwise kept exactly."""
    pairs = [(mode, e) for e in events] if isinstance(mode, str) else [tuple(e) for e in events]
    if phase is None:
        return pairs
    phases = [phase(m, p) for m, p in pairs]
    assert phases == sorted(phases), f"events out of superstep order: {pairs}"
    return sorted(pairs, key=lambda mp: (phase(*mp), repr(mp)))


MODES: list[str | list[str]] = ["updates", "values", "custom", ["updates", "values", "custom"]]
STREAM_CASES = [
    pytest.param(graphs.fanout, {"x": 5}, fanout_phase, id="fanout"),
    pytest.param(graphs.mapreduce, {"items": [3, 1, 4, 1, 5, 9]}, mapreduce_phase, id="mapreduce"),
    pytest.param(graphs.custom, {"n": 4}, None, id="custom"),
]


# -- tests -------------------------------------------------------------------------------------


async def test_fifty_concurrent_runs_give_exact_results(cluster: Cluster, client: Client) -> None:
    jobs: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
    for x in range(30):
        jobs.append((graphs.fanout, {"x": x}, graphs.expected_fanout(x)))
    for i in range(20):
        items = [i, i + 1, (i * 7) % 5, i * i]
        jobs.append((graphs.mapreduce, {"items": items}, graphs.expected_mapreduce(items)))
    assert len(jobs) == 50

    handles = await within(asyncio.gather(
        *(client.submit(g.name, data) for g, data, _ in jobs)
    ))
    assert len({h.run_id for h in handles}) == 50
    remote, embedded = await within(asyncio.gather(
        asyncio.gather(*(h.result() for h in handles)),
        asyncio.gather(*(g.ainvoke(data) for g, data, _ in jobs)),
    ), 60)

    for (graph, data, expected), got, local in zip(jobs, remote, embedded, strict=True):
        assert got == expected, f"{graph.name} {data}"
        assert local == expected, f"embedded {graph.name} {data}"
    statuses = await within(asyncio.gather(*(h.status() for h in handles)))
    assert statuses == ["done"] * 50
    cluster.assert_alive()


@pytest.mark.parametrize("graph, data, phase", STREAM_CASES)
async def test_remote_streams_match_embedded(
    cluster: Cluster, client: Client, graph: Any, data: dict[str, Any],
    phase: Callable[[str, Any], float] | None,
) -> None:
    handle = await within(client.submit(graph.name, data))
    for mode in MODES:
        # Each stream() reads the run's events from its first, however often it is called.
        remote = await collect(handle.stream(mode))
        local = await collect(graph.astream(data, stream_mode=mode))
        assert canonical(remote, mode, phase) == canonical(local, mode, phase), mode
    if graph is graphs.custom:
        assert await collect(handle.stream("custom")) == graphs.expected_custom_events(data["n"])
    assert await within(handle.result()) == await within(graph.ainvoke(data))
    assert await within(handle.status()) == "done"


async def test_both_workers_execute_jobs(cluster: Cluster, client: Client) -> None:
    worker_pids = {w.pid for w in cluster.workers}
    seen: set[int] = set()
    width = 8  # each worker runs at most 8 nodes at once, each node takes 0.1 s

    async def round_of_runs() -> bool:
        handles = await asyncio.gather(*(client.submit(graphs.who.name, {"width": width})
                                         for _ in range(4)))
        for result in await asyncio.gather(*(h.result() for h in handles)):
            assert result["width"] == width and len(result["pids"]) == width
            seen.update(result["pids"])
        return seen >= worker_pids

    await wait_until(round_of_runs, "both workers to run a node", seconds=30, interval=0)
    assert seen == worker_pids, "a node ran in a process that is not one of the workers"
    for worker in cluster.workers:
        assert protocol.TASK_FUNCTION in worker.output(), f"{worker.name} logged no job"


async def test_failing_node_raises_its_error(cluster: Cluster, client: Client) -> None:
    handle = await within(client.submit(graphs.boom.name, {"x": 1}))
    with pytest.raises(ValueError) as caught:
        await within(handle.result())
    assert type(caught.value) is ValueError and str(caught.value) == "boom"
    assert any("explode" in note for note in getattr(caught.value, "__notes__", []))
    assert await within(handle.status()) == "failed"

    # The stream shows what happened before the failure, then raises the same error.
    seen: list[Any] = []
    with pytest.raises(ValueError) as caught:
        async for update in handle.stream("updates"):
            seen.append(update)
    assert str(caught.value) == "boom"
    assert seen == [{"before": {"y": 2}}]


async def test_a_failure_cancels_the_running_siblings(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    """As in LangGraph, a node that fails fails its run at once, and the nodes of its step
    still running, on any worker, are cancelled (the slow one would run for ten minutes)."""
    handle = await within(client.submit(graphs.siblings.name, {"folder": str(tmp_path)}))
    with pytest.raises(ValueError, match="sibling failed"):
        await within(handle.result())
    assert await within(handle.status()) == "failed"
    await wait_until(lambda: asyncio.to_thread((tmp_path / "slow-cancelled").exists),
                     "the slow sibling to see its cancellation")


async def test_cached_results_are_shared_by_the_workers(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    """A cached node runs once per key on the whole cluster: a later run, on any worker, gets
    its result from the cache in Redis (its update says so) until the cache is cleared."""

    async def run(n: int) -> list[Any]:
        handle = await within(client.submit(graphs.cached.name, {"folder": str(tmp_path), "n": n}))
        return await collect(handle.stream("updates"))

    assert await run(3) == [{"square": {"out": 9}}]
    assert await run(3) == [{"square": {"out": 9}, "__metadata__": {"cached": True}}]
    assert await run(4) == [{"square": {"out": 16}}]
    assert (tmp_path / "calls").read_text().split() == ["3", "4"]
    await graphs.cached.with_cluster(cluster.url).aclear_cache()
    assert await run(3) == [{"square": {"out": 9}}]
    assert (tmp_path / "calls").read_text().split() == ["3", "4", "3"]


async def test_a_value_no_other_process_can_rebuild_fails_at_submit(
    cluster: Cluster, client: Client
) -> None:
    """An input holding an instance of a class defined inside a function cannot be rebuilt by
    the cluster's processes: the submit fails, naming the key and the class, instead of the run
    waiting forever."""

    class Local(pydantic.BaseModel):
        folder: str = "x"

    with pytest.raises(SerializationError, match=r"'folder'.*<locals>\.Local, a class defined "
                                                 "inside a function"):
        await within(client.submit(graphs.cached.name, {"folder": Local(), "n": 1}))


async def test_bad_input_names_the_field(cluster: Cluster, client: Client) -> None:
    handle = await within(client.submit(graphs.person.name, {"name": "ann", "age": "old"}))
    with pytest.raises(InvalidInputError, match="age"):
        await within(handle.result())
    assert await within(handle.status()) == "failed"

    good = await within(client.submit(graphs.person.name, {"name": "ann", "age": 41}))
    expected = {"name": "ann", "age": 41, "greeting": "hello ann, 41"}
    assert await within(good.result()) == expected
    assert await within(graphs.person.ainvoke({"name": "ann", "age": 41})) == expected


async def test_unknown_graph_is_refused_at_submit(cluster: Cluster) -> None:
    client = await within(Client.connect(cluster.url, ready_timeout=0.2), 10)
    try:
        with pytest.raises(UnknownGraphError, match="no_such_graph"):
            await within(client.submit("no_such_graph", {"x": 1}))
    finally:
        await client.close()


async def test_cancel_ends_the_run_as_cancelled(cluster: Cluster, client: Client) -> None:
    handle = await within(client.submit(graphs.who.name, {"width": 2}))  # nodes take 0.1 s
    await within(handle.cancel())
    with pytest.raises(RunCancelledError):
        await within(handle.result())
    assert await within(handle.status()) == "cancelled"


def test_sync_client_from_plain_code(cluster: Cluster) -> None:
    with SyncClient(cluster.url) as sync:
        handle = sync.submit(graphs.fanout.name, {"x": 7})
        assert handle.result() == graphs.expected_fanout(7)
        assert handle.status() == "done"
        updates = list(handle.stream("updates"))
        assert [next(iter(u)) for u in updates][0] == "prep"
        assert sorted(next(iter(u)) for u in updates) == ["join", "left", "prep", "right"]
        assert list(handle.stream("values"))[-1] == graphs.expected_fanout(7)

        failing = sync.submit(graphs.boom.name, {"x": 1})
        with pytest.raises(ValueError) as caught:
            failing.result()
        assert str(caught.value) == "boom"
        assert failing.status() == "failed"


class _CreatesFileWhenUnpickled:
    """Unpickling this runs `open(path, "w")`: the file appears iff someone unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _pickled_job(marker: Path, protocol_version: int) -> bytes:
    job = {"t": 1, "f": protocol.TASK_FUNCTION, "a": (), "et": int(time.time() * 1000),
           "k": {"run_id": "x", "step": 0, "task_id": "0:x", "graph": graphs.fanout.name,
                 "fingerprint": graphs.fanout.fingerprint},
           "payload": _CreatesFileWhenUnpickled(marker)}
    return pickle.dumps(job, protocol=protocol_version)


async def test_garbage_and_pickled_jobs_are_not_executed(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    # The pickles are live: unpickling one in this process does create its marker file.
    control = tmp_path / "control-marker"
    pickle.loads(_pickled_job(control, 5))
    assert control.exists()

    markers = [tmp_path / f"unpickled-{v}" for v in (0, 2, 5)]
    touched = tmp_path / "os-system-ran"
    now = int(time.time() * 1000)
    task_like = {"run_id": "no-such-run", "step": 0, "task_id": "0:prep",
                 "graph": graphs.fanout.name, "fingerprint": graphs.fanout.fingerprint}
    forged = {
        "garbage": b"\x00\xff\xfe this is not a job \xc1\xc1",
        "empty-map": msgpack.packb({}),
        "bad-kwargs": msgpack.packb({"t": 1, "f": protocol.TASK_FUNCTION, "a": [],
                                     "k": {"evil": 1}, "et": now}),
        "unknown-function": msgpack.packb({"t": 1, "f": "os.system", "a": [f"touch {touched}"],
                                           "k": {}, "et": now}),
        "no-such-run": msgpack.packb({"t": 1, "f": protocol.TASK_FUNCTION, "a": [],
                                      "k": task_like, "et": now}),
        **{f"pickle-{v}": _pickled_job(m, v) for v, m in zip((0, 2, 5), markers, strict=True)},
    }
    job_ids = {name: f"forged-{name}-{uuid.uuid4().hex[:8]}" for name in forged}
    inbox = protocol.inbox_key(graphs.fanout.name)
    inbox_marker = tmp_path / "unpickled-inbox"

    r = redis.asyncio.Redis.from_url(cluster.url)
    try:
        async with r.pipeline(transaction=True) as pipe:
            for name, data in forged.items():
                pipe.set(f"arq:job:{job_ids[name]}", data)
                pipe.zadd(protocol.DEFAULT_QUEUE, {job_ids[name]: now})
            pipe.rpush(protocol.ready_key(protocol.DEFAULT_QUEUE), *job_ids.values())
            # Garbage notifications for the orchestrator, too.
            pipe.lpush(inbox, b"\xc1garbage", pickle.dumps(_CreatesFileWhenUnpickled(inbox_marker)))
            await pipe.execute()

        async def drained() -> bool:
            async with r.pipeline(transaction=False) as pipe:
                for job_id in job_ids.values():
                    pipe.zscore(protocol.DEFAULT_QUEUE, job_id)
                    pipe.exists(f"arq:job:{job_id}")
                pipe.llen(inbox)
                replies = await pipe.execute()
            return all(not x for x in replies)

        # Every forged job was taken off the queue (and its job key deleted) by a worker,
        # which recorded an arq result for it.
        await wait_until(drained, "the workers to drop the forged jobs", seconds=20)
        for name, job_id in job_ids.items():
            assert await r.exists(f"arq:result:{job_id}"), f"no worker finished job {name}"
    finally:
        await r.aclose()

    assert not any(m.exists() for m in [*markers, inbox_marker]), "a pickle was unpickled"
    assert not touched.exists(), "a job ran a function the workers do not register"
    cluster.assert_alive()

    # ... and the cluster keeps serving runs.
    handles = await within(asyncio.gather(
        *(client.submit(graphs.fanout.name, {"x": 100 + i}) for i in range(5))
    ))
    results = await within(asyncio.gather(*(h.result() for h in handles)))
    assert results == [graphs.expected_fanout(100 + i) for i in range(5)]
    assert not any(m.exists() for m in [*markers, inbox_marker, touched])


async def test_worker_with_other_graph_version_refuses(
    cluster: Cluster, client: Client, arq_processes: ArqProcesses
) -> None:
    # This graph is served apart: its own queue, which its orchestrator must use as well,
    # and on that queue only a worker that loaded the second version of the graph.
    queue = "arqgraph:test:versioned"
    orchestrator = arq_processes.orchestrator(
        "tests.graphs.cluster_graphs:versioned", redis=cluster.url, name="v1-orchestrator",
        extra=("--queue", queue, *ORCHESTRATOR_FLAGS))
    worker = arq_processes.worker(
        "tests.graphs.cluster_graphs_v2:versioned", redis=cluster.url, name="v2-worker",
        extra=("--queue", queue, *WORKER_FLAGS))
    wait_registered(cluster.url, [graphs.versioned.name])
    worker.wait_for_output("worker serving graphs", STARTUP_LIMIT)
    assert graphs.versioned.fingerprint != graphs_v2.versioned.fingerprint

    handle = await within(client.submit(graphs.versioned.name, {"x": 1}))
    with pytest.raises(GraphMismatchError, match="fingerprint") as caught:
        await within(handle.result())
    message = str(caught.value)
    assert graphs.versioned.fingerprint in message and graphs_v2.versioned.fingerprint in message
    assert await within(handle.status()) == "failed"
    ran: list[Any] = []
    with pytest.raises(GraphMismatchError):
        async for update in handle.stream("updates"):
            ran.append(update)
    assert ran == [], "a node of the mismatched graph ran"

    for proc in (orchestrator, worker):
        assert proc.terminate(timeout=15) == 0, proc.logs()


async def test_sigterm_stops_processes_cleanly(
    redis_server: RedisServer, arq_processes: ArqProcesses
) -> None:
    url = url_for_db(redis_server, 1)  # a fresh keyspace: nothing shared with the main cluster
    orchestrator, workers = start_pool(arq_processes, url, prefix="sigterm-")
    producer = await within(Client.connect(url), 10)
    try:
        done = await within(producer.submit(graphs.fanout.name, {"x": 2}))
        assert await within(done.result()) == graphs.expected_fanout(2)

        # SIGTERM while nodes run: the orchestrator stops at once; the workers let the
        # running nodes finish (--shutdown-grace 5) and post their outcomes, then exit 0.
        width = 4
        busy = await within(producer.submit(graphs.who.name, {"width": width, "delay": 3.0}))
        r = redis.asyncio.Redis.from_url(url)
        try:
            async def all_running() -> bool:
                return len(await r.keys("arq:in-progress:*")) == width

            await wait_until(all_running, "every node of the run to be running")
            orchestrator.signal_term()
            assert orchestrator.wait_exit(timeout=15) == 0, orchestrator.logs()
            assert len(await r.keys("arq:in-progress:*")) == width, "nodes ended too early"
            for worker in workers:
                worker.signal_term()
            codes = {w.name: w.wait_exit(timeout=20) for w in workers}
            assert codes == {w.name: 0 for w in workers}, "\n".join(w.logs() for w in workers)
            posted = await current_outcomes(r, busy.run_id)
            outcomes = sum(1 for task_id in posted if task_id.endswith(b":whoami"))
        finally:
            await r.aclose()
        assert outcomes == width, "a running node was not allowed to finish"
        for proc in (orchestrator, *workers):
            assert "Traceback" not in proc.output(), proc.logs()
        assert await within(busy.status()) == "running"

        # The interrupted run is not lost: a new orchestrator (and worker) finish it.
        new_orchestrator, new_workers = start_pool(arq_processes, url, workers=1,
                                                   prefix="restarted-")
        result = await within(busy.result())
        assert len(result["pids"]) == width
        assert set(result["pids"]) <= {w.pid for w in workers}
        for proc in (new_orchestrator, *new_workers):
            assert proc.terminate(timeout=20) == 0, proc.logs()
    finally:
        await producer.close()


async def test_class_based_nodes_run_on_the_cluster(cluster: Cluster, client: Client) -> None:
    config = {"configurable": {"thread_id": f"class-{uuid.uuid4().hex}"}}
    handle = await within(client.submit(graphs.class_nodes.name, {"query": "cats"}, config))
    thread = config["configurable"]["thread_id"]
    assert await within(handle.result()) == {
        "query": "cats", "seen": ["fetch:cats", f"rank:{thread}", "duck:2"]
    }


async def test_functional_api_runs_on_the_cluster(cluster: Cluster, client: Client) -> None:
    handle = await within(client.submit(graphs.functional_screening.name, "Clara"))
    result = await within(handle.result())
    assert result["decision"] == "HIRED - Background: Clear, Refs: Positive"
    assert result["overlap"], "the two checks did not run at the same time"
    assert set(result["pids"]) <= {w.pid for w in cluster.workers}


async def test_pocketflow_flows_run_on_the_cluster(cluster: Cluster, client: Client) -> None:
    from tests.graphs import pocketflow_graphs as flows

    recipes = await within(client.submit(flows.recipes.name, {"user_ingredient": "egg"}))
    assert (await within(recipes.result()))["suggestion"] == "Pizza"
    # 8 items of 0.5 s each, gathered on the worker as PocketFlow does: all 8 at the same time
    squares = await within(client.submit(flows.parallel_squares.name,
                                         {"numbers": list(range(8))}))
    result = await within(squares.result())
    assert result["squares"] == [n * n for n in range(8)] and result["all_overlap"]
    agent = await within(client.submit(flows.agent.name, {"question": "why?"}))
    assert (await within(agent.result()))["answer"] == "answer from 2 results"
