"""kill -9 of the orchestrator at exact points of its work, on a real redis-server with real
processes: a restarted (or a second) orchestrator finishes the run, and no superstep is skipped or
applied twice. Likewise for a worker killed in the move it makes of a run whose step's only task
it ran (`arqgraph.storage.moves`).

The orchestrator that crashes is `tests/crashing_process.py`: `arqgraph orchestrator` with a
few store methods wrapped so that the process sends itself SIGKILL when the chosen run reaches
the chosen point (see its docstring for the points). The test then checks, in Redis, that the
run was left exactly at that point (e.g. 7 of 20 jobs enqueued), starts a normal orchestrator
(`python -m arqgraph.cli orchestrator`) and checks that the run ends with the state, the
`values` events and the `updates` events of a fault-free run of the same graph, computed by
running the graph embedded in this process. The graphs (tests/graphs/crash_graphs.py) fold
every key with `operator.add`, so a step applied twice or skipped changes the state.

Two worker processes (`--poll-delay 0.05 --lease 1`, started with `--no-moves` so that every
move is the orchestrator's) serve the orchestrator's tests, on Redis database 2, which the module
flushes first; the test of a worker's move has database 3 and its own processes. Every wait is on
a condition with a bound.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from arqgraph import protocol
from arqgraph.client import Client, RunHandle
from arqgraph.protocol import RunRecord
from tests.conftest import ArqProcess, ArqProcesses, RedisServer, wait_for
from tests.graphs import crash_graphs as graphs
from tests.test_cluster import STARTUP_LIMIT, collect, url_for_db, wait_until, within

SPEC = "tests.graphs.crash_graphs:GRAPHS"
DB = 2
WORKER_FLAGS = ("--poll-delay", "0.05", "--lease", "1", "--concurrency", "8",
                "--shutdown-grace", "5")
ORCHESTRATOR_FLAGS = ("--sweep-interval", "0.5")
CRASH_LIMIT = 30.0  # the bound for a crashing orchestrator to reach its point and die
FANOUT_WIDTH = 20


# -- processes -----------------------------------------------------------------------------------


def on_thread(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def unique(name: str) -> str:
    """A process name of its own, so that its log files are its own."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


def start_crashing(
    procs: ArqProcesses, url: str, *, name: str, point: str | None = None,
    thread: str | None = None, marker: Path | None = None, worker: bool = False,
    no_moves: bool = False,
) -> ArqProcess:
    """`python -m tests.crashing_process` (an orchestrator, or a worker), started and logged as
    the fixture's processes are, and stopped with them at the end of the session if the test
    did not."""
    args: list[str] = []
    if point is not None:
        args += ["--crash-at", point, "--crash-thread", str(thread), "--marker", str(marker)]
    if worker:
        args += ["--worker", *(["--no-moves"] if no_moves else []), *WORKER_FLAGS]
    else:
        args += ORCHESTRATOR_FLAGS
    return procs.start(unique(name), *args, "--redis", url, SPEC,
                       module="tests.crashing_process")


def wait_killed(proc: ArqProcess, marker: Path) -> dict[str, Any]:
    """Wait for `proc` to die by its own SIGKILL; return what it wrote in the marker."""
    wait_for(lambda: not proc.alive(), CRASH_LIMIT, f"{proc.name} to crash")
    proc.returncode = proc.process.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}, not SIGKILL:\n{proc.logs()}"
    assert marker.exists(), f"{proc.name} died without reaching its crash point:\n{proc.logs()}"
    return dict(json.loads(marker.read_text()))


@pytest.fixture(scope="module")
def url(redis_server: RedisServer) -> str:
    address = url_for_db(redis_server, DB)
    client = redis.Redis.from_url(address)
    try:
        client.flushdb()
    finally:
        client.close()
    return address


@pytest.fixture(scope="module")
def workers(url: str, arq_processes: ArqProcesses) -> Iterator[list[ArqProcess]]:
    """Workers that leave every move to the orchestrator (`--no-moves`), so that each crash point
    is the orchestrator's; test_worker_killed_in_its_move has its own."""
    pool = [start_crashing(arq_processes, url, name=f"crash-worker{i}", worker=True,
                           no_moves=True) for i in (1, 2)]
    for worker in pool:
        worker.wait_for_output("worker serving graphs", STARTUP_LIMIT)
    yield pool
    for worker in pool:
        worker.terminate(timeout=20)


@pytest.fixture
async def client(url: str) -> AsyncIterator[Client]:
    producer = await within(Client.connect(url), 10)
    try:
        yield producer
    finally:
        await producer.close()


# -- what Redis holds ----------------------------------------------------------------------------


async def load(client: Client, run_id: str) -> RunRecord:
    record = await client.store.load_run(run_id)
    assert record is not None, f"run {run_id} is gone"
    return record


async def traces(
    client: Client, record: RunRecord, task_ids: list[str]
) -> dict[str, set[str]]:
    """For each task: which of its arq job, arq result and outcome exist, read atomically (arq
    replaces a finished job by its result in one transaction, so an enqueued task shows one)."""
    writes = protocol.writes_key(record.tag, record.checkpoint_id)
    async with client.redis.pipeline(transaction=True) as pipe:
        for task_id in task_ids:
            job = protocol.job_id(record.run_id, record.checkpoint_id, task_id)
            pipe.exists(f"arq:job:{job}")
            pipe.exists(f"arq:result:{job}")
            pipe.hexists(writes, task_id)
        replies = await pipe.execute()
    kinds = ("job", "result", "outcome")
    return {
        task_id: {kind for kind, there in zip(kinds, replies[3 * i:3 * i + 3], strict=True) if there}
        for i, task_id in enumerate(task_ids)
    }


async def check_crash_site(client: Client, run_id: str, point: str, marker: dict[str, Any]) -> None:
    """The run is where the orchestrator was when it died, and nothing of what it did not do yet
    has happened (only the crashing orchestrator served the run so far)."""
    assert marker["tag"] == protocol.tag_of(run_id) and point.startswith(marker["point"]), marker
    record = await load(client, run_id)
    kind, *numbers = point.split(":")
    checkpoint = record.checkpoint
    assert checkpoint is not None
    ids = [t.id for t in checkpoint.tasks]
    seen = await traces(client, record, ids)
    traced = [t for t in ids if seen[t]]
    in_active = await client.redis.sismember(protocol.active_key(record.graph), run_id)
    if kind == "after-finish":
        assert record.status == "done"
        # Retired by the finishing commit itself: no longer active, its keys expiring.
        assert not in_active and await client.redis.ttl(protocol.run_key(run_id)) > 0
        return
    assert record.status == "running" and in_active, record.status
    if kind == "start-commit":
        assert checkpoint.step == -1 and record.version == marker["version"] == 1
        assert await client.redis.keys(f"arq:*{protocol.PREFIX}:{run_id}:*") == []
    elif kind == "step-commit":
        assert checkpoint.step == int(numbers[0]) and record.version == marker["version"]
        # Its jobs enqueued with it (all of them), or none yet (a step of several chunks).
        assert traced == marker["enqueued"] and traced in ([], ids), f"enqueued {traced} of {ids}"
    elif kind == "enqueue":
        step, count = int(numbers[0]), int(numbers[1])
        assert checkpoint.step == step and len(ids) > count
        assert traced == ids[:count] == marker["enqueued"], f"enqueued {traced} of {ids}"
    elif kind == "after-enqueue":
        assert checkpoint.step == int(numbers[0]) and traced == ids
    elif kind in ("outcomes-read", "before-finish"):
        if kind == "outcomes-read":
            assert checkpoint.step == int(numbers[0])
        assert all("outcome" in seen[t] for t in ids), seen
        assert marker.get("version", record.version) == record.version
    else:
        raise AssertionError(f"unknown point {point}")


async def check_finished_like_reference(
    client: Client, handle: RunHandle, graph: Any, data: dict[str, Any], expected: dict[str, Any]
) -> dict[str, Any]:
    """The run ends done with the state and events of a fault-free embedded run of the graph,
    whose state is also `expected` (computed in plain Python, so that a bug shared by the
    embedded and the cluster runs shows too); each task was executed by a worker and applied
    once; the run was retired."""
    result = await within(handle.result())
    reference = await within(graph.ainvoke(data))
    assert reference == expected, "the fault-free embedded run is wrong"
    assert result == reference
    assert await within(handle.status()) == "done"

    # One values event per committed superstep, in order: a step committed twice or skipped
    # would show here even if it wrote nothing new.
    remote_values = await collect(handle.stream("values"))
    assert remote_values == await collect(graph.astream(data, stream_mode="values"))
    # One updates event per task (tasks of one step finish in any order).
    remote_updates = await collect(handle.stream("updates"))
    local_updates = await collect(graph.astream(data, stream_mode="updates"))
    assert sorted(map(repr, remote_updates)) == sorted(map(repr, local_updates))

    # Every node appends one entry to `log`: as many tasks have an outcome, and each of them was
    # claimed (started) by a worker at least once; a task started twice was still applied once.
    run_id = handle.run_id
    tag = protocol.tag_of(run_id)
    outcomes: set[str] = set()
    claims: dict[str, int] = {}
    for saved in await client.store.threads.history(tag):
        written = await client.redis.hkeys(protocol.writes_key(tag, saved.id))
        outcomes |= {k.decode() for k in written if not k.startswith((b"resume:", b"__"))}
        claimed = await client.redis.hgetall(protocol.claims_key(tag, saved.id))
        claims.update({k.decode(): int(v) for k, v in claimed.items()})
    assert len(outcomes) == len(reference["log"]), sorted(outcomes)
    attempts = {k: v for k, v in claims.items() if not k.endswith((":ended", ":failures"))}
    assert set(attempts) == outcomes and min(attempts.values()) >= 1, attempts

    # Retired: no longer swept, and its keys expire.
    async def retired() -> bool:
        active = await client.redis.sismember(protocol.active_key(graph.name), run_id)
        return not active and await client.redis.ttl(protocol.run_key(run_id)) > 0

    await wait_until(retired, f"run {run_id} to be retired", seconds=15)
    return dict(result)


# -- tests ---------------------------------------------------------------------------------------

FANOUT = (graphs.fanout, {"n": FANOUT_WIDTH}, graphs.expected_fanout(FANOUT_WIDTH))
CHAIN = (graphs.chain, {"x": 1}, graphs.expected_chain(1))
JOIN = (graphs.join, {"x": 1}, graphs.expected_join(1))

RESTART_CASES = [
    pytest.param(*FANOUT, "start-commit", id="fanout-after-first-checkpoint"),
    pytest.param(*FANOUT, "enqueue:1:7", id="fanout-mid-enqueue-7-of-20"),
    pytest.param(*FANOUT, "step-commit:1", id="fanout-after-commit-before-enqueue"),
    pytest.param(*FANOUT, "outcomes-read:1", id="fanout-after-reading-outcomes"),
    pytest.param(*FANOUT, "before-finish", id="fanout-before-finishing-commit"),
    pytest.param(*FANOUT, "after-finish", id="fanout-after-finishing-commit"),
    pytest.param(*CHAIN, "start-commit", id="chain-after-first-checkpoint"),
    pytest.param(*CHAIN, "after-enqueue:3", id="chain-between-supersteps"),
    pytest.param(*CHAIN, "step-commit:4", id="chain-after-commit-before-enqueue"),
    pytest.param(*CHAIN, "outcomes-read:5", id="chain-after-reading-outcomes"),
    pytest.param(*JOIN, "enqueue:1:2", id="join-mid-enqueue-2-of-3"),
    pytest.param(*JOIN, "step-commit:3", id="join-after-commit-half-joined"),
    pytest.param(*JOIN, "outcomes-read:2", id="join-after-reading-outcomes"),
]


@pytest.mark.parametrize("graph, data, expected, point", RESTART_CASES)
async def test_restarted_orchestrator_finishes_the_run(
    url: str, workers: list[ArqProcess], arq_processes: ArqProcesses, client: Client,
    tmp_path: Path, graph: Any, data: dict[str, Any], expected: dict[str, Any], point: str,
) -> None:
    thread = f"crash-{uuid.uuid4().hex}"
    marker = tmp_path / "crashed.json"
    crashing = start_crashing(arq_processes, url, name="crashing-orchestrator", point=point,
                              thread=thread, marker=marker)
    restarted: ArqProcess | None = None
    try:
        crashing.wait_for_output("serving graphs", STARTUP_LIMIT)
        handle = await within(client.submit(graph.name, data, on_thread(thread)))
        run_id = handle.run_id
        crash = wait_killed(crashing, marker)
        await check_crash_site(client, run_id, point, crash)
        record = await load(client, run_id)
        if graph is graphs.join and record.checkpoint and record.checkpoint.step in (2, 3):
            # Half-joined: the checkpoint remembers that two of merge's three sources finished.
            assert record.checkpoint.seen == {"merge": ("a", "c")}

        restarted = arq_processes.orchestrator(SPEC, redis=url, extra=ORCHESTRATOR_FLAGS,
                                               name=unique("restarted-orchestrator"))
        await check_finished_like_reference(client, handle, graph, data, expected)
        restarted.wait_for_output("serving graphs", STARTUP_LIMIT)  # (the run may be done first)
        assert all(w.alive() for w in workers)
        assert restarted.terminate() == 0, restarted.logs()
        assert "Traceback" not in restarted.output(), restarted.logs()
    finally:
        for proc in (crashing, restarted):
            if proc is not None and proc.alive():
                proc.kill()


@pytest.mark.parametrize("point", ["enqueue:1:7", "after-enqueue:1"])
async def test_second_orchestrator_survives_a_killed_one(
    url: str, workers: list[ArqProcess], arq_processes: ArqProcesses, client: Client,
    tmp_path: Path, point: str,
) -> None:
    """Two orchestrators serve at once; one dies at `point` while the other keeps serving.

    The `work` tasks wait for a gate file, so superstep 1 stays open (no outcome) until the test
    opens the gate, which it does only after the crash. Meanwhile the victim's sweep (every
    0.5 s) looks at the run and enqueues the step's 20 missing tasks, which is where it dies:
    whatever the survivor did first, the victim surely reaches the point.
    """
    thread = f"crash-{uuid.uuid4().hex}"
    marker = tmp_path / "crashed.json"
    gate = tmp_path / "gate"
    data = {"n": FANOUT_WIDTH, "gate": str(gate)}
    survivor = arq_processes.orchestrator(SPEC, redis=url, extra=ORCHESTRATOR_FLAGS,
                                          name=unique("survivor-orchestrator"))
    victim = start_crashing(arq_processes, url, name="victim-orchestrator", point=point,
                            thread=thread, marker=marker)
    try:
        for proc in (survivor, victim):
            proc.wait_for_output("serving graphs", STARTUP_LIMIT)
        handle = await within(client.submit(graphs.fanout.name, data, on_thread(thread)))
        run_id = handle.run_id
        crash = wait_killed(victim, marker)
        assert crash["tag"] == protocol.tag_of(run_id) and crash["point"] == point.split(":")[0]
        record = await load(client, run_id)
        assert record.status == "running" and record.checkpoint is not None
        assert record.checkpoint.step == 1
        ids = [t.id for t in record.checkpoint.tasks]
        assert len(ids) == FANOUT_WIDTH
        seen = await traces(client, record, ids)
        assert not any("outcome" in s for s in seen.values()), "the gate let a task through"
        assert survivor.alive(), survivor.logs()

        gate.touch()
        expected = graphs.expected_fanout(FANOUT_WIDTH, str(gate))
        result = await check_finished_like_reference(client, handle, graphs.fanout, data, expected)
        assert result["log"].count("reduce") == 1
        assert survivor.alive() and all(w.alive() for w in workers)
    finally:
        gate.touch()  # never leave gated tasks waiting on the workers
        if victim.alive():
            victim.kill()
    assert survivor.terminate() == 0, survivor.logs()
    assert "Traceback" not in survivor.output(), survivor.logs()


WORKER_CASES = [
    pytest.param(*CHAIN, "step-commit:4", id="chain-after-the-move"),
    pytest.param(*FANOUT, "step-commit:1", id="fanout-after-the-move-to-20-tasks"),
    pytest.param(*CHAIN, "after-finish", id="chain-after-its-end"),
]


@pytest.mark.parametrize("graph, data, expected, point", WORKER_CASES)
async def test_worker_killed_in_its_move(
    redis_server: RedisServer, arq_processes: ArqProcesses, tmp_path: Path, graph: Any,
    data: dict[str, Any], expected: dict[str, Any], point: str,
) -> None:
    """A worker that has just run a step's only task moves the run on with the post of its
    outcome (one script: there is no moment when the outcome is posted and the move not made),
    and takes the next step's job when that step has one task; killed right after, the run is
    where the move left it (the next step committed with all its jobs, listed as ready, or the
    one it took held by its lease, not listed), and another worker takes it to the same end,
    the held job once its lease runs out. A run whose last step it ran, it ends (and retires)
    with the post. On a database of its own, where the crashing worker is the only one until
    it dies."""
    own_url = url_for_db(redis_server, DB + 1)
    flushing = redis.Redis.from_url(own_url)
    try:
        flushing.flushdb()
    finally:
        flushing.close()
    thread = f"crash-{uuid.uuid4().hex}"
    marker = tmp_path / "crashed.json"
    orchestrator = arq_processes.orchestrator(SPEC, redis=own_url, extra=ORCHESTRATOR_FLAGS,
                                              name=unique("move-orchestrator"))
    crashing = start_crashing(arq_processes, own_url, name="crashing-worker", point=point,
                              thread=thread, marker=marker, worker=True)
    client = await within(Client.connect(own_url), 10)
    after: ArqProcess | None = None
    try:
        for proc in (orchestrator, crashing):
            proc.wait_for_output("serving graphs", STARTUP_LIMIT)
        handle = await within(client.submit(graph.name, data, on_thread(thread)))
        crash = wait_killed(crashing, marker)
        await check_crash_site(client, handle.run_id, point, crash)
        if point.startswith("step-commit"):
            await check_held(client, handle.run_id, crash)

        after = arq_processes.worker(SPEC, redis=own_url, extra=WORKER_FLAGS,
                                     name=unique("after-worker"))
        await check_finished_like_reference(client, handle, graph, data, expected)
        assert orchestrator.alive() and after.alive()
        assert "Traceback" not in orchestrator.output() + after.output(), orchestrator.logs()
    finally:
        await client.close()
        for proc in (crashing, after, orchestrator):
            if proc is not None and proc.alive():
                proc.terminate(timeout=20)


async def check_held(client: Client, run_id: str, crash: dict[str, Any]) -> None:
    """A worker killed right after its move took the step's job when the step has one task
    (held by its lease, not listed as ready), and none of a wider step's, which are listed."""
    record = await load(client, run_id)
    assert record.checkpoint is not None
    tasks = record.checkpoint.tasks
    jobs = [protocol.job_id(run_id, record.checkpoint_id, t.id) for t in tasks]
    ready = [i for i in await client.redis.lrange(protocol.ready_key(protocol.DEFAULT_QUEUE), 0, -1)
             if i != protocol.NOT_A_JOB.encode()]  # (a take from an idle queue wakes a peer)
    if len(tasks) == 1:
        assert crash["held"] == tasks[0].id and ready == []
        assert await client.redis.exists(protocol.lease_key(jobs[0]))
    else:
        assert crash["held"] is None
        assert set(ready) <= {j.encode() for j in jobs}  # (less those its loop popped)


async def test_crash_points_are_exact_and_fire_once(
    url: str, workers: list[ArqProcess], arq_processes: ArqProcesses, client: Client,
    tmp_path: Path,
) -> None:
    """The launcher itself: an instance restarted with the same arguments (the marker exists)
    does not crash again and serves the run to its end, as `arqgraph orchestrator` would."""
    thread = f"crash-{uuid.uuid4().hex}"
    marker = tmp_path / "crashed.json"
    first = start_crashing(arq_processes, url, name="crashing-twice", point="enqueue:1:3",
                           thread=thread, marker=marker)
    second: ArqProcess | None = None
    try:
        first.wait_for_output("serving graphs", STARTUP_LIMIT)
        handle = await within(client.submit(graphs.fanout.name, {"n": 5}, on_thread(thread)))
        crash = wait_killed(first, marker)
        assert crash["enqueued"] == [f"1:send:{i}:work" for i in range(3)] and crash["of"] == 5
        second = start_crashing(arq_processes, url, name="crashing-twice", point="enqueue:1:3",
                                thread=thread, marker=marker)
        await check_finished_like_reference(client, handle, graphs.fanout, {"n": 5},
                                            graphs.expected_fanout(5))
        assert second.alive(), second.logs()
        assert second.terminate() == 0, second.logs()
    finally:
        for proc in (first, second):
            if proc is not None and proc.alive():
                proc.kill()


def test_crash_points_parse() -> None:
    from tests.crashing_process import CrashPoint

    assert CrashPoint.parse("enqueue:1:7") == CrashPoint("enqueue", 1, 7)
    assert CrashPoint.parse("step-commit:3") == CrashPoint("step-commit", 3)
    assert CrashPoint.parse("after-finish") == CrashPoint("after-finish")
    for bad in ("enqueue:1", "step-commit", "before-finish:2", "nowhere", "enqueue:1:0"):
        with pytest.raises(Exception, match="crash point|N >= 1"):
            CrashPoint.parse(bad)

