"""Worker faults injected into a running cluster of real processes on a real redis-server.

Each test starts its own orchestrator and workers on a Redis database of its own, with a short
lease (`--lease 1`), injects one fault (kill -9, SIGTERM, SIGSTOP/SIGCONT, a blocked event loop,
a poison node, an oversized update) and checks the final state against the fault-free result,
and, through the probe keys of tests/graphs/fault_graphs.py, how often each node was started.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio

from arqgraph import protocol
from arqgraph.client import Client
from arqgraph.errors import TaskLostError, UpdateTooLargeError
from arqgraph.types import Command
from tests.conftest import ArqProcess, ArqProcesses, RedisServer, RedisServers
from tests.graphs import fault_graphs as graphs
from tests.test_cluster import STARTUP_LIMIT, wait_registered, wait_until, within

SPEC = "tests.graphs.fault_graphs:GRAPHS"
NAMES = [g.name for g in graphs.GRAPHS]
BASE_WORKER_FLAGS = ("--poll-delay", "0.05", "--concurrency", "8", "--lease", "1")


@dataclass
class Pool:
    url: str
    procs: ArqProcesses
    orchestrator: ArqProcess
    workers: list[ArqProcess]
    redis: redis.asyncio.Redis

    def add_worker(self, *flags: str) -> ArqProcess:
        worker = self.procs.worker(SPEC, redis=self.url, extra=(*BASE_WORKER_FLAGS, *flags),
                                   name=f"worker{len(self.workers) + 1}")
        worker.wait_for_output("worker serving graphs", STARTUP_LIMIT)
        self.workers.append(worker)
        return worker

    def worker_with_pid(self, pid: int) -> ArqProcess:
        return next(w for w in self.workers if w.pid == pid)

    async def starts(self, tag: str, item: int) -> int:
        return int(await self.redis.get(f"{tag}:starts:{item}") or 0)

    async def holder(self, tag: str, item: int) -> int:
        return int(await self.redis.get(f"{tag}:holder:{item}") or 0)

    async def wait_started(self, tag: str, count: int) -> None:
        async def started() -> bool:
            return int(await self.redis.llen(f"{tag}:started")) >= count

        await wait_until(started, f"{count} node starts of run {tag}")

    async def open_gate(self, tag: str) -> None:
        await self.redis.set(f"{tag}:gate", 1)


_next_db = iter(range(20, 40))  # this module's own Redis databases


@pytest.fixture
def start_pool(
    redis_server: RedisServer, arq_processes: ArqProcesses
) -> Iterator[Any]:
    started: list[Pool] = []

    async def start(
        workers: int = 2, worker_flags: tuple[str, ...] = (), server: RedisServer | None = None
    ) -> Pool:
        url = (f"redis://127.0.0.1:{redis_server.port}/{next(_next_db)}" if server is None
               else server.url)
        r = redis.asyncio.Redis.from_url(url)
        await r.flushdb()
        orchestrator = arq_processes.orchestrator(SPEC, redis=url, extra=("--sweep-interval", "1"))
        pool = Pool(url, arq_processes, orchestrator, [], r)
        started.append(pool)
        for _ in range(workers):
            pool.add_worker(*worker_flags)
        wait_registered(url, NAMES)
        return pool

    yield start
    for pool in started:
        for proc in [pool.orchestrator, *pool.workers]:
            proc.kill()


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[Client] = []

    async def connect(pool: Pool) -> Client:
        clients.append(await within(Client.connect(pool.url), 10))
        return clients[-1]

    yield connect
    for c in clients:
        await c.close()
    for c in clients:
        await c.redis.aclose()


def gated_input(pool: Pool, items: int) -> dict[str, Any]:
    return {"probe": pool.url, "tag": uuid.uuid4().hex, "items": list(range(items))}


async def fault_free(pool: Pool, data: dict[str, Any]) -> Any:
    """The same graph and input run embedded, with its gate open from the start."""
    reference = {**data, "tag": f"{data['tag']}-reference"}
    await pool.open_gate(reference["tag"])
    result = await within(graphs.gated_fanout.ainvoke(reference))
    assert result == graphs.expected_gated(reference)
    return {**result, "tag": data["tag"]}


# -- tests -------------------------------------------------------------------------------------


async def test_kill_9_worker_mid_node_reruns_elsewhere(start_pool: Any, client_for: Any) -> None:
    pool = await start_pool()
    client = await client_for(pool)
    data = gated_input(pool, 6)
    handle = await within(client.submit(graphs.gated_fanout.name, data))
    await pool.wait_started(data["tag"], 6)
    holders = {i: await pool.holder(data["tag"], i) for i in data["items"]}
    victim = pool.worker_with_pid(holders[0])
    victim.kill()  # SIGKILL: no cleanup, its in-progress keys stay until their lease runs out
    await pool.open_gate(data["tag"])

    # The survivor re-runs the victim's nodes once their leases lapse (about a second), far
    # sooner than arq's job timeout + 10 s; every update is applied once.
    assert await within(handle.result()) == await fault_free(pool, data)
    for item, pid in holders.items():
        expected = 2 if pid == victim.pid else 1
        assert await pool.starts(data["tag"], item) == expected, f"item {item}"
    assert all(w.alive() for w in pool.workers if w is not victim)


async def test_sigterm_lets_running_nodes_finish_within_grace(
    start_pool: Any, client_for: Any
) -> None:
    pool = await start_pool(workers=1, worker_flags=("--shutdown-grace", "20"))
    client = await client_for(pool)
    data = gated_input(pool, 3)
    handle = await within(client.submit(graphs.gated_fanout.name, data))
    await pool.wait_started(data["tag"], 3)
    deploying = pool.workers[0]
    deploying.signal_term()
    await wait_until(_logged(deploying, "worker stopping on SIGTERM"), "SIGTERM handling")
    await pool.open_gate(data["tag"])  # the nodes finish during the grace period
    assert deploying.wait_exit(timeout=20) == 0, deploying.logs()
    pool.add_worker()  # the new version of the deploy runs the rest of the run
    assert await within(handle.result()) == await fault_free(pool, data)
    assert [await pool.starts(data["tag"], i) for i in data["items"]] == [1, 1, 1]


async def test_sigterm_while_redis_is_away_stops_the_worker_without_waiting_the_grace(
    start_pool: Any, client_for: Any, redis_servers: RedisServers
) -> None:
    """Redis gone (a whole deploy going down at once): a worker told to stop has nothing it
    could finish, and must not wait out its --shutdown-grace for jobs that are done already,
    nor keep reconnecting."""
    server = redis_servers.start()
    pool = await start_pool(workers=1, worker_flags=("--shutdown-grace", "60"), server=server)
    client = await client_for(pool)
    data = gated_input(pool, 2)
    await pool.open_gate(data["tag"])
    handle = await within(client.submit(graphs.gated_fanout.name, data))
    assert await within(handle.result()) == await fault_free(pool, data)
    worker = pool.workers[0]
    server.kill()
    await wait_until(_logged(worker, "lost Redis"), "the worker to see Redis gone")
    worker.signal_term()
    assert worker.wait_exit(timeout=30) == 0, worker.logs()  # not after the 60 s grace


async def test_jobs_whose_ready_entries_were_lost_still_run(
    start_pool: Any, client_for: Any
) -> None:
    """A worker killed between popping job ids off the ready list and taking them leaves the
    jobs in arq's queue with no entry: the sweep of the queue starts them."""
    pool = await start_pool(workers=0)
    client = await client_for(pool)
    data = gated_input(pool, 3)
    await pool.open_gate(data["tag"])
    handle = await within(client.submit(graphs.gated_fanout.name, data))
    ready = protocol.ready_key(protocol.DEFAULT_QUEUE)

    async def listed() -> bool:
        return bool(await pool.redis.llen(ready))

    await wait_until(listed, "the first step's jobs to be listed as ready")
    await pool.redis.delete(ready)  # as if popped by a worker that died at once
    pool.add_worker()
    assert await within(handle.result()) == await fault_free(pool, data)


async def test_sigterm_hands_unfinished_nodes_back_without_using_retries(
    start_pool: Any, client_for: Any
) -> None:
    # --crash-limit 1: a start that counted as lost would fail the run with TaskLostError.
    pool = await start_pool(workers=1, worker_flags=("--shutdown-grace", "1", "--crash-limit", "1"))
    client = await client_for(pool)
    data = gated_input(pool, 3)
    handle = await within(client.submit(graphs.gated_fanout.name, data))
    await pool.wait_started(data["tag"], 3)
    deploying = pool.workers[0]
    deploying.signal_term()  # the gated nodes outlive the grace: they are cancelled, handed back
    assert deploying.wait_exit(timeout=20) == 0, deploying.logs()
    assert "Traceback" not in deploying.output(), deploying.logs()
    successor = pool.add_worker("--crash-limit", "1")
    await pool.wait_started(data["tag"], 6)
    await pool.open_gate(data["tag"])
    assert await within(handle.result()) == await fault_free(pool, data)
    for item in data["items"]:
        assert await pool.starts(data["tag"], item) == 2
        assert await pool.holder(data["tag"], item) == successor.pid


async def frozen_and_taken_again(pool: Pool, client: Client) -> tuple[Any, dict[str, Any],
                                                                      ArqProcess, ArqProcess]:
    """A run of one gated node whose worker is frozen (SIGSTOP) until its lease lapses and
    another worker has started the node again: the run's handle and input, the frozen worker
    and the other (the caller sends SIGCONT)."""
    data = gated_input(pool, 1)
    handle = await within(client.submit(graphs.gated_fanout.name, data))
    await pool.wait_started(data["tag"], 1)
    stale = pool.worker_with_pid(await pool.holder(data["tag"], 0))
    stale.process.send_signal(signal.SIGSTOP)  # frozen: its lease lapses, the task restarts
    try:
        await pool.wait_started(data["tag"], 2)
    except BaseException:
        stale.process.send_signal(signal.SIGCONT)
        raise
    fresh = pool.worker_with_pid(await pool.holder(data["tag"], 0))
    assert fresh.pid != stale.pid
    return handle, data, stale, fresh


async def test_stale_worker_finishing_late_is_fenced(start_pool: Any, client_for: Any) -> None:
    pool = await start_pool()
    handle, data, stale, _ = await frozen_and_taken_again(pool, await client_for(pool))
    try:
        await pool.open_gate(data["tag"])
        result = await within(handle.result())
    finally:
        stale.process.send_signal(signal.SIGCONT)
    assert result == await fault_free(pool, data)
    # The stale attempt wakes up, finishes its node and is refused: its update is not applied.
    await wait_until(_logged(stale, "fenced: a newer attempt owns it"), "the stale post to be fenced")
    assert await pool.starts(data["tag"], 0) == 2
    assert stale.alive()


async def test_a_fenced_workers_late_end_does_not_hold_the_run_for_arqs_result_key(
    start_pool: Any, client_for: Any
) -> None:
    """A frozen worker's lease runs out, another takes the job again and is killed -9. The
    frozen one wakes up, finishes its node and is fenced. It used to end the job as arq does
    all the same (the dead worker's hold with it), keeping the job's result key a minute,
    which made every re-drive of the job a no-op: the run waited the minute. Now it leaves
    the job to its holder, whose lease runs out: the run goes on at once, with the node
    started a third time and its update applied once."""
    pool = await start_pool()
    handle, data, stale, fresh = await frozen_and_taken_again(pool, await client_for(pool))
    try:
        fresh.kill()
        await pool.open_gate(data["tag"])  # (the stale node ends within the dead one's lease)
    finally:
        stale.process.send_signal(signal.SIGCONT)
    await wait_until(_logged(stale, "fenced: a newer attempt owns it"), "the stale post")
    assert await within(handle.result(), 20) == await fault_free(pool, data)
    assert await pool.starts(data["tag"], 0) == 3
    assert stale.alive()


async def test_node_blocking_the_event_loop_keeps_its_lease(
    start_pool: Any, client_for: Any
) -> None:
    pool = await start_pool()
    client = await client_for(pool)
    tag = uuid.uuid4().hex
    data = {"probe": pool.url, "tag": tag, "block": 4.0}  # four leases long
    result = await within(client.submit(graphs.blocking_graph.name, data))
    assert await within(result.result()) == {**data, "done": [0]}
    assert await pool.starts(tag, 0) == 1, "the blocked node was started a second time"


async def test_poison_node_fails_after_bounded_retries(start_pool: Any, client_for: Any) -> None:
    pool = await start_pool()
    client = await client_for(pool)
    tag = uuid.uuid4().hex
    handle = await within(client.submit(graphs.poison_graph.name, {"probe": pool.url, "tag": tag}))
    with pytest.raises(ConnectionError, match=f"upstream of run {tag} is down"):
        await within(handle.result())
    assert await pool.starts(tag, 0) == 3  # RetryPolicy(max_attempts=3)
    assert await within(handle.status()) == "failed"
    # The workers keep serving other runs.
    data = gated_input(pool, 2)
    await pool.open_gate(data["tag"])
    ok = await within(client.submit(graphs.gated_fanout.name, data))
    assert await within(ok.result()) == graphs.expected_gated(data)


async def test_task_lost_with_its_worker_too_often_fails_the_run(
    start_pool: Any, client_for: Any
) -> None:
    pool = await start_pool(workers=1, worker_flags=("--crash-limit", "2"))
    client = await client_for(pool)
    data = gated_input(pool, 1)
    handle = await within(client.submit(graphs.gated_fanout.name, data))
    for starts in (1, 2):  # the node takes its worker down twice (here: kill -9 while it runs)
        await pool.wait_started(data["tag"], starts)
        pool.worker_with_pid(await pool.holder(data["tag"], 0)).kill()
        pool.add_worker("--crash-limit", "2")
    with pytest.raises(TaskLostError, match="started 2 times and never finished"):
        await within(handle.result())
    assert await pool.starts(data["tag"], 0) == 2


async def test_oversized_update_fails_the_node_with_a_typed_error(
    start_pool: Any, client_for: Any
) -> None:
    pool = await start_pool(workers=1, worker_flags=("--max-update-bytes", "100000"))
    client = await client_for(pool)
    handle = await within(client.submit(graphs.large_graph.name, {"size": 200_000}))
    with pytest.raises(UpdateTooLargeError) as caught:
        await within(handle.result())
    message = str(caught.value)
    assert "node 'big'" in message and "key 'blob'" in message and "100,000" in message
    small = await within(client.submit(graphs.large_graph.name, {"size": 1000}))
    assert await within(small.result()) == {"size": 1000, "blob": "x" * 1000, "done": []}


def _logged(proc: ArqProcess, text: str) -> Any:
    async def seen() -> bool:
        await asyncio.sleep(0)
        return text in proc.output()

    return seen


async def test_interrupted_run_resumes_from_another_producer_after_a_cluster_restart(
    start_pool: Any, client_for: Any
) -> None:
    pool = await start_pool()
    asker = await client_for(pool)
    config = {"configurable": {"thread_id": f"review-{uuid.uuid4().hex}"}}
    handle = await within(asker.submit(graphs.asking_graph.name, {"tag": "t"}, config))
    paused = await within(handle.result())
    assert await within(handle.status()) == "interrupted"
    [question] = paused["__interrupt__"]
    assert question.value == {"question": "approve?", "done": [1]}
    assert paused["done"] == [1]

    # The whole cluster dies (kill -9) and a new one starts on the same Redis.
    for proc in [pool.orchestrator, *pool.workers]:
        proc.kill()
    pool.orchestrator = pool.procs.orchestrator(SPEC, redis=pool.url,
                                                extra=("--sweep-interval", "1"),
                                                name="orchestrator-after-restart")
    pool.workers = []
    pool.add_worker()

    # Another producer, days later: reads the question and answers it.
    answerer = await client_for(pool)
    state = await within(answerer.get_state(config))
    assert state.next == ("review",) and [i.value for i in state.interrupts] == [question.value]
    resumed = await within(answerer.submit(graphs.asking_graph.name, Command(resume="yes"), config))
    assert await within(resumed.result()) == {"tag": "t", "done": [1, 2]}
    history = await within(answerer.get_state_history(config))
    assert [s.metadata["step"] for s in history] == [2, 1, 0, -1]
    assert (await within(answerer.get_state(config))).next == ()


async def test_update_that_would_fill_redis_fails_with_a_typed_error(
    start_pool: Any, client_for: Any, redis_servers: RedisServers
) -> None:
    server = redis_servers.start()
    pool = await start_pool(workers=1, worker_flags=("--max-update-bytes", str(64 << 20)),
                            server=server)
    client = await client_for(pool)
    used = int((await pool.redis.info("memory"))["used_memory"])
    await pool.redis.config_set("maxmemory", used + (12 << 20))
    handle = await within(client.submit(graphs.large_graph.name, {"size": 8 << 20}))
    with pytest.raises(UpdateTooLargeError) as caught:
        await within(handle.result())
    message = str(caught.value)
    assert "node 'big'" in message and "key 'blob'" in message and "maxmemory" in message
    small = await within(client.submit(graphs.large_graph.name, {"size": 1000}))
    assert await within(small.result()) == {"size": 1000, "blob": "x" * 1000, "done": []}


async def test_full_redis_keeps_the_node_outcome_until_it_has_room(
    start_pool: Any, client_for: Any, redis_servers: RedisServers
) -> None:
    server = redis_servers.start()
    pool = await start_pool(workers=1, server=server)
    client = await client_for(pool)
    tag = uuid.uuid4().hex
    data = {"probe": pool.url, "tag": tag, "block": 1.0}
    handle = await within(client.submit(graphs.blocking_graph.name, data))
    await pool.wait_started(tag, 1)
    await pool.redis.config_set("maxmemory", 1)  # over the limit: Redis refuses every write
    worker = pool.workers[0]
    await wait_until(_logged(worker, "Redis is out of memory (maxmemory) and refused the update of "
                                    "node 'blocker' (key 'done'"), "the worker to report a full Redis")
    await pool.redis.config_set("maxmemory", 0)
    assert await within(handle.result()) == {**data, "done": [0]}
    assert await pool.starts(tag, 0) == 1


async def test_duplicate_delivery_and_a_forged_unknown_task_change_nothing(
    start_pool: Any, client_for: Any
) -> None:
    pool = await start_pool()
    client = await client_for(pool)
    data = gated_input(pool, 1)
    handle = await within(client.submit(graphs.gated_fanout.name, data))
    await pool.wait_started(data["tag"], 1)
    record = await client.store.load_run(handle.run_id)
    assert record is not None and record.checkpoint is not None
    [task] = record.checkpoint.tasks
    job = protocol.TaskJob(run_id=record.run_id, checkpoint_id=record.checkpoint_id,
                           step=record.checkpoint.step, task_id=task.id, graph=record.graph,
                           fingerprint=record.fingerprint)
    # The same task delivered a second time (under another job id), while the first runs...
    duplicate_id, forged_id = f"duplicate-{uuid.uuid4()}", f"forged-{uuid.uuid4()}"
    await client.redis.enqueue_job(protocol.TASK_FUNCTION, _job_id=duplicate_id,
                                   _queue_name=protocol.DEFAULT_QUEUE, **job.model_dump())
    # ...and a forged job naming a task this step does not have.
    forged = job.model_copy(update={"task_id": f"{task.id}-nope"})
    await client.redis.enqueue_job(protocol.TASK_FUNCTION, _job_id=forged_id,
                                   _queue_name=protocol.DEFAULT_QUEUE, **forged.model_dump())
    await client.redis.rpush(protocol.ready_key(protocol.DEFAULT_QUEUE), duplicate_id, forged_id)
    await pool.wait_started(data["tag"], 2)  # both deliveries run the node
    await pool.open_gate(data["tag"])
    assert await within(handle.result()) == await fault_free(pool, data)  # applied once
    assert await pool.starts(data["tag"], 0) == 2
    await wait_until(_logged_any(pool.workers, "fenced: a newer attempt owns it"),
                     "the older delivery to be fenced")
    await wait_until(_logged_any(pool.workers, f"no task {task.id}-nope in this step"),
                     "the forged job to be refused")
    assert all(w.alive() for w in pool.workers)


def _logged_any(procs: list[ArqProcess], text: str) -> Any:
    async def seen() -> bool:
        await asyncio.sleep(0)
        return any(text in proc.output() for proc in procs)

    return seen


# -- cluster-wide node limits ---------------------------------------------------------------------


async def test_concurrency_limit_holds_across_worker_processes(
    start_pool: Any, client_for: Any
) -> None:
    pool = await start_pool()  # two workers, 8 slots each: 16 could run at once
    client = await client_for(pool)
    tag = f"guarded:{uuid.uuid4().hex}"
    data = {"probe": pool.url, "tag": tag, "items": list(range(50))}
    handle = await within(client.submit(graphs.limits_graph.name, data))
    result = await within(handle.result(), 60)
    assert result["done"] == list(range(50))
    assert int(await pool.redis.get(f"{tag}:max")) == 3  # reached, never exceeded
    pids = {int(p) for p in await pool.redis.smembers(f"{tag}:pids")}
    assert pids == {w.pid for w in pool.workers}, "both workers ran the node"


async def test_rate_limit_holds_across_worker_processes(start_pool: Any, client_for: Any) -> None:
    pool = await start_pool()
    client = await client_for(pool)
    tag = f"paced:{uuid.uuid4().hex}"
    data = {"probe": pool.url, "tag": tag, "items": list(range(40))}
    handle = await within(client.submit(graphs.limits_graph.name, data))
    result = await within(handle.result(), 60)
    assert result["done"] == list(range(40))
    starts = sorted(float(s) for s in await pool.redis.lrange(f"{tag}:starts", 0, -1))
    assert len(starts) == 40
    # 20/s: the 40 starts spread over at least 39 intervals of 50 ms, and no second holds more
    # than 20 of them (one more for the edges of the window, as the probe reads Redis's clock
    # a moment after the worker's reservation).
    assert starts[-1] - starts[0] >= 39 * 0.05 - 0.05
    for i in range(len(starts) - 21):
        assert starts[i + 21] - starts[i] >= 1.0 - 0.05, f"more than 21 starts within 1 s at {i}"
    pids = {int(p) for p in await pool.redis.smembers(f"{tag}:pids")}
    assert pids == {w.pid for w in pool.workers}, "both workers ran the node"


async def test_concurrency_slot_of_a_killed_worker_frees_itself(
    start_pool: Any, client_for: Any
) -> None:
    pool = await start_pool()
    client = await client_for(pool)
    data = gated_input(pool, 2)  # two tasks of a node with concurrency=1
    handle = await within(client.submit(graphs.single_graph.name, data))
    await pool.wait_started(data["tag"], 1)  # one holds the only slot; the other waits
    holder = pool.worker_with_pid(await pool.holder(data["tag"], int(
        (await pool.redis.lindex(f"{data['tag']}:started", 0)).decode())))
    assert int(await pool.redis.llen(f"{data['tag']}:started")) == 1
    holder.kill()  # its slot's lease runs out; the other worker gets the slot
    await pool.open_gate(data["tag"])
    result = await within(handle.result())
    assert sorted(result["done"]) == [0, 1]


# -- subgraphs ------------------------------------------------------------------------------------


async def test_subgraph_fan_out_spreads_over_the_workers(start_pool: Any, client_for: Any) -> None:
    """A subgraph's nodes are jobs on the pool: twelve gated tasks of a fan-out inside a
    subgraph all run at once, which no single worker (8 slots) can do alone."""
    pool = await start_pool()
    client = await client_for(pool)
    data = gated_input(pool, 12)
    handle = await within(client.submit(graphs.subgraph_fanout.name, data))
    await pool.wait_started(data["tag"], 2 + 12)  # the parent task, `prepare`, the twelve
    holders = {await pool.holder(data["tag"], i) for i in data["items"]}
    assert holders == {w.pid for w in pool.workers}
    await pool.open_gate(data["tag"])
    assert await within(handle.result(), 60) == graphs.expected_subgraph(data)


async def test_kill_9_mid_subgraph_reruns_no_finished_inner_step(
    start_pool: Any, client_for: Any
) -> None:
    """The worker that runs the parent task dies while the subgraph's fan-out runs: another
    worker runs the parent task again, which waits for the same child run; the subgraph's
    finished first step does not run again."""
    pool = await start_pool()
    client = await client_for(pool)
    data = gated_input(pool, 4)
    handle = await within(client.submit(graphs.subgraph_fanout.name, data))
    await pool.wait_started(data["tag"], 2 + 4)
    victim = pool.worker_with_pid(await pool.holder(data["tag"], graphs.DELEGATED))
    victim.kill()
    await pool.open_gate(data["tag"])
    assert await within(handle.result(), 60) == graphs.expected_subgraph(data)
    assert await pool.starts(data["tag"], graphs.PREPARED) == 1
    assert await pool.starts(data["tag"], graphs.DELEGATED) == 2  # re-run after its lease


async def test_drain_stops_a_cluster_run_after_its_step(start_pool: Any, client_for: Any) -> None:
    """A producer drains a run while its fan-out runs: the step finishes, its checkpoint is
    saved, no later step starts, the run raises GraphDrained; resuming the thread ends it."""
    from arqgraph.errors import GraphDrained

    pool = await start_pool()
    client = await client_for(pool)
    data = gated_input(pool, 3)
    config = {"configurable": {"thread_id": f"drain-{data['tag']}"}}
    handle = await within(client.submit(graphs.gated_fanout.name, data, config))
    await pool.wait_started(data["tag"], 3)
    await handle.drain("rollout")
    await pool.open_gate(data["tag"])
    with pytest.raises(GraphDrained, match="rollout"):
        await within(handle.result(), 60)
    state = await client.get_state(config)
    assert state.next == ("reduce",) and sorted(state.values["done"]) == data["items"]
    resumed = await within(client.submit(graphs.gated_fanout.name, None, config))
    result = await within(resumed.result(), 60)
    assert result["total"] == sum(data["items"])
    assert [await pool.starts(data["tag"], i) for i in data["items"]] == [1, 1, 1]


async def test_cancelling_a_run_cancels_its_subgraphs_runs(start_pool: Any, client_for: Any
                                                           ) -> None:
    """A run cancelled while a subgraph of it runs: the subgraph's child run is cancelled too,
    its queued work dropped, instead of running on for nobody."""
    from arqgraph.errors import RunCancelledError

    pool = await start_pool()
    client = await client_for(pool)
    data = gated_input(pool, 3)
    handle = await within(client.submit(graphs.subgraph_fanout.name, data))
    await pool.wait_started(data["tag"], 2 + 3)
    [child] = await client.store.events.children(handle.run_id)
    await handle.cancel()
    with pytest.raises(RunCancelledError):
        await within(handle.result(), 60)

    async def child_cancelled() -> bool:
        return await client.store.status(child) == "cancelled"

    await wait_until(child_cancelled, "the subgraph's run to be cancelled")


async def test_run_max_concurrency_holds_across_worker_processes(
    start_pool: Any, client_for: Any
) -> None:
    """A run given `max_concurrency` runs at most that many of its tasks at once on the
    whole pool, as LangGraph's in one process; its other runs are not limited."""
    pool = await start_pool()
    client = await client_for(pool)
    tag = f"free:{uuid.uuid4().hex}"
    data = {"probe": pool.url, "tag": tag, "items": list(range(40))}
    handle = await within(client.submit(graphs.run_limited_graph.name, data,
                                        {"max_concurrency": 3}))
    result = await within(handle.result(), 60)
    assert result["done"] == list(range(40))
    assert int(await pool.redis.get(f"{tag}:max")) == 3  # reached, never exceeded
    pids = {int(p) for p in await pool.redis.smembers(f"{tag}:pids")}
    assert pids == {w.pid for w in pool.workers}, "both workers ran the node"
