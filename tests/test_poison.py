"""Poison: unreadable data in the keys and queues arqgraph reads, on a real cluster; and
values that cannot cross the wire, checked where they are made.

Bad bytes, bad msgpack, wrong types and unknown names are put where the processes read them
(arq's queue and ready list, arq job keys, the inboxes, the active-run sets, run records).
Each piece must be set aside as a dead letter naming where it was, fail only the run it belongs
to (with CorruptDataError), and leave every process serving: the good runs beside it finish.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import redis.asyncio
from arq.constants import job_key_prefix
from arq.utils import timestamp_ms

from arqgraph import protocol
from arqgraph.client import Client
from arqgraph.errors import CorruptDataError, SerializationError
from tests.conftest import ArqProcesses, RedisServer
from tests.graphs import fault_graphs as graphs
from tests.test_cluster import wait_registered, wait_until, within
from tests.test_worker_faults import BASE_WORKER_FLAGS, NAMES, SPEC, Pool

_next_db = iter(range(50, 56))  # this module's own Redis databases
GRAPH = graphs.gated_fanout.name
QUEUE = protocol.DEFAULT_QUEUE


@pytest.fixture
def orchestrated(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[Any]:
    """An orchestrator on a database of its own, and no worker yet (`Pool.add_worker`)."""
    started: list[Pool] = []

    async def start() -> Pool:
        url = f"redis://127.0.0.1:{redis_server.port}/{next(_next_db)}"
        r = redis.asyncio.Redis.from_url(url)
        await r.flushdb()
        orchestrator = arq_processes.orchestrator(SPEC, redis=url, extra=("--sweep-interval", "1"))
        started.append(Pool(url, arq_processes, orchestrator, [], r))
        wait_registered(url, NAMES)
        return started[-1]

    yield start
    for pool in started:
        for proc in [pool.orchestrator, *pool.workers]:
            proc.kill()


async def _queued_job(client: Client, run_id: str) -> str:
    """The id of the job the orchestrator enqueued for the run's one task."""
    async def enqueued() -> str | None:
        record = await client.store.load_run(run_id)
        if record is None or record.checkpoint is None or not record.checkpoint.tasks:
            return None
        job_id = protocol.job_id(run_id, record.checkpoint_id, record.checkpoint.tasks[0].id)
        return job_id if await client.redis.exists(job_key_prefix + job_id) else None

    return str(await wait_until(enqueued, f"the job of run {run_id}"))


async def _fails_with_corrupt_data(handle: Any) -> str:
    with pytest.raises(CorruptDataError) as failed:
        await within(handle.result())
    return str(failed.value)


async def test_poison_in_every_queue_and_key_is_set_aside_and_fails_only_its_run(
    orchestrated: Any,
) -> None:
    pool = await orchestrated()
    client = await within(Client.connect(pool.url), 10)
    r = pool.redis
    try:
        def data() -> dict[str, Any]:
            return {"probe": pool.url, "tag": uuid.uuid4().hex, "items": [0]}

        # A run record garbled while its job waits: the orchestrator's sweep finds it.
        garbled = await within(client.submit(GRAPH, data()))
        await _queued_job(client, garbled.run_id)
        await r.hset(protocol.run_key(garbled.run_id),
                     mapping={"status": b"\xffnope", "version": b"x", "config": b"\xc1"})
        assert "status" in await _fails_with_corrupt_data(garbled)

        # A job whose payload is a pickle (not msgpack), one calling no function, and one
        # whose arguments are not a task's.
        bad_bytes = await within(client.submit(GRAPH, data()))
        unknown_function = await within(client.submit(GRAPH, data()))
        wrong_types = await within(client.submit(GRAPH, data()))
        await r.set(job_key_prefix + await _queued_job(client, bad_bytes.run_id),  # never run
                    pickle.dumps({"t": 1, "f": protocol.TASK_FUNCTION, "a": [], "k": {}}))
        await r.set(job_key_prefix + await _queued_job(client, unknown_function.run_id),
                    msgpack.packb({"t": 1, "f": "os.system", "a": [], "k": {}, "et": 1}))
        await r.set(job_key_prefix + await _queued_job(client, wrong_types.run_id),
                    msgpack.packb({"t": 1, "f": protocol.TASK_FUNCTION, "a": [],
                                   "k": {"run_id": wrong_types.run_id, "step": "x"}, "et": 1}))

        # Not UTF-8: a job id in arq's queue and in the ready list, an id in the active set;
        # and a notification that is not msgpack.
        now = timestamp_ms()
        await r.zadd(QUEUE, {b"arqgraph:\xff\xfe": now, b"\x80queued": now})
        await r.set(job_key_prefix.encode() + b"arqgraph:\xff\xfe", b"\xc1")
        await r.rpush(protocol.ready_key(QUEUE), b"\xffready")
        await r.sadd(protocol.active_key(GRAPH), b"\xffactive", b"not-a-run-id")
        await r.lpush(protocol.inbox_key(GRAPH), b"\xc1 not msgpack")

        for _ in range(2):
            pool.add_worker(*BASE_WORKER_FLAGS)
        good_data = data()
        await pool.open_gate(good_data["tag"])
        good = await within(client.submit(GRAPH, good_data))
        await r.xadd(protocol.events_key(good.run_id), {"mode": b"\xff", "data": b"\xc1"})
        values = [v async for v in good.stream("values")]  # (read past the garbage event)
        assert values[-1] == graphs.expected_gated(good_data)
        assert await within(good.result()) == graphs.expected_gated(good_data)
        assert "not an arq job" in await _fails_with_corrupt_data(bad_bytes)
        assert "'os.system'" in await _fails_with_corrupt_data(unknown_function)
        assert "step" in await _fails_with_corrupt_data(wrong_types)

        async def all_set_aside() -> list[protocol.DeadLetter] | None:
            letters = await client.dead_letters()
            wheres = {letter.where for letter in letters}
            expected = {protocol.run_key(garbled.run_id), protocol.active_key(GRAPH),
                        protocol.inbox_key(GRAPH), QUEUE, protocol.ready_key(QUEUE)}
            events = any(w.startswith(protocol.events_key(good.run_id)) for w in wheres)
            return letters if expected <= wheres and events and len(letters) >= 10 else None

        letters = await wait_until(all_set_aside, "every poison to be set aside")
        assert {letter.data for letter in letters} >= {b"\xffready", b"\xc1 not msgpack",
                                                       b"\xffactive", b"not-a-run-id"}
        assert {letter.run_id for letter in letters} >= {
            garbled.run_id, bad_bytes.run_id, unknown_function.run_id, wrong_types.run_id}
        assert await r.zcard(QUEUE) == 0  # nothing left for a worker to choke on
        assert not await r.sismember(protocol.active_key(GRAPH), b"\xffactive")
        assert pool.orchestrator.alive() and all(w.alive() for w in pool.workers)
        # ... and a worker started now finds nothing to crash on
        pool.add_worker(*BASE_WORKER_FLAGS)
        again = data()
        await pool.open_gate(again["tag"])
        assert await within((await client.submit(GRAPH, again)).result()) == \
            graphs.expected_gated(again)
        assert len(await client.dead_letters()) == len(letters)  # each logged once
        listed = subprocess.run(  # (`arqgraph dead-letters`: JSON lines, newest first)
            [sys.executable, "-m", "arqgraph.cli", "dead-letters", "--redis", pool.url,
             "--count", "3"], capture_output=True, text=True, timeout=60, check=True)
        shown = [json.loads(line) for line in listed.stdout.splitlines()]
        assert [(d["where"], d["data"]) for d in shown] == [
            (d.where, d.data.decode(errors="backslashreplace")) for d in letters[:3]]
    finally:
        await client.close()


async def test_values_that_cannot_cross_the_wire_end_their_runs_on_a_cluster(
    orchestrated: Any,
) -> None:
    @dataclasses.dataclass
    class Local:  # defined here: no worker process can import it
        probe: str
        tag: str
        items: list[int]

    pool = await orchestrated()
    pool.add_worker(*BASE_WORKER_FLAGS)
    client = await within(Client.connect(pool.url), 10)
    try:
        # a garbled registration is set aside, and registered again by the orchestrator
        await pool.redis.hset(protocol.GRAPHS_KEY, graphs.junk_task.name, b"\xc1")
        with pytest.raises(CorruptDataError, match="registration of graph 'junk_task'"):
            await within(client.submit(graphs.junk_task.name, "k"))

        async def registered_again() -> bool:
            return bool(await client.store.graph_info(graphs.junk_task.name))

        await wait_until(registered_again, "the orchestrator to register the graph again")
        # a task's result msgpack cannot encode fails the call (and its run), naming it
        junk = await within(client.submit(graphs.junk_task.name, "k"))
        with pytest.raises(SerializationError, match="task 'make_junk': key 'k': .*builtins.obj"):
            await within(junk.result())
        # a state given as an instance of a class defined in a function runs, as in LangGraph
        state = Local(pool.url, uuid.uuid4().hex, [0])
        await pool.open_gate(state.tag)
        local = await within(client.submit(GRAPH, state))
        assert await within(local.result()) == graphs.expected_gated(dataclasses.asdict(state))
        # ... and one inside the state fails at once, naming the class
        with pytest.raises(SerializationError, match=r"input key 'items': .*<locals>\.Local"):
            await within(client.submit(GRAPH, {**dataclasses.asdict(state), "items": state}))
    finally:
        await client.close()
