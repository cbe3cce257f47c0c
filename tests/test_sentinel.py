"""Redis Sentinel: every process and the client take a `redis+sentinel://` URL, and ride a
failover: real redis-servers (a master and its replica) and a real sentinel process. Once
switched over cleanly, once with the master killed -9 under load after its replica fell behind,
so the failover rolls back the last writes: runs that had ended run again, nodes that were
running are taken again, runs whose creation was lost are submitted again (same run id), and
every run ends with its updates applied once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from arqgraph.client import Client, RunHandle
from arqgraph.errors import RunNotFoundError
from tests.conftest import ArqProcesses, RedisServer, RedisServers, wait_for
from tests.graphs import fault_graphs as graphs
from tests.test_cluster import STARTUP_LIMIT, wait_registered, within
from tests.test_worker_faults import BASE_WORKER_FLAGS, NAMES, SPEC, Pool

SERVICE = "arqgraph-test"


@dataclass
class Sentinel:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def master_port(self) -> int:
        return int(self.client.sentinel_get_master_addr_by_name(SERVICE)[1])


@pytest.fixture
def sentinel_pair(
    redis_servers: RedisServers, tmp_path: Path
) -> Iterator[tuple[RedisServer, RedisServer, Sentinel]]:
    """A master, its replica, and one sentinel watching them (quorum 1)."""
    from bench.cluster import free_port

    master, replica = redis_servers.start(), redis_servers.start()
    redis.Redis(port=replica.port).replicaof("127.0.0.1", master.port)
    wait_for(lambda: redis.Redis(port=replica.port).info("replication")["master_link_status"]
             == "up", 15, "the replica to follow the master")
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 1\n"
                    f"sentinel down-after-milliseconds {SERVICE} 2000\n"
                    f"sentinel failover-timeout {SERVICE} 10000\n")
    with open(tmp_path / "sentinel.log", "wb") as log:
        process = subprocess.Popen([redis_servers.binary, str(conf), "--sentinel"], stdout=log,
                                   stderr=subprocess.STDOUT)
    sentinel = Sentinel(port, process)
    try:
        def knows_the_replica() -> bool:
            try:
                return bool(sentinel.client.sentinel_slaves(SERVICE))
            except redis.exceptions.RedisError:
                return False

        wait_for(knows_the_replica, 20, "the sentinel to find the replica")
        yield master, replica, sentinel
    finally:
        process.terminate()
        process.wait(timeout=10)


def fail_over(sentinel: Sentinel, replica: RedisServer) -> None:
    """Have the sentinel make `replica` the master: ask it (it refuses while it does not know
    the replica well, or fails over already) until it is done."""
    def failing_over() -> bool:
        try:
            return sentinel.master_port() == replica.port or bool(
                sentinel.client.sentinel_failover(SERVICE))
        except redis.exceptions.ResponseError:
            return False

    wait_for(failing_over, 60, "the sentinel to start the failover", interval=0.2)
    wait_for(lambda: sentinel.master_port() == replica.port, 60, "the failover")


@dataclass
class OnSentinel:
    """A cluster whose processes are on the sentinel's URL; `pool.redis` is the nodes' probe, a
    Redis of its own (not failed over)."""

    master: RedisServer
    replica: RedisServer
    sentinel: Sentinel
    url: str
    pool: Pool


@pytest.fixture
def on_sentinel(
    sentinel_pair: tuple[RedisServer, RedisServer, Sentinel], arq_processes: ArqProcesses,
    redis_server: RedisServer,
) -> Iterator[Callable[..., OnSentinel]]:
    """Starts an orchestrator and `workers` workers (with `flags`) on the sentinel's URL."""
    master, replica, sentinel = sentinel_pair
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/{SERVICE}/0"
    started: list[Pool] = []

    def start(probe_db: int, workers: int, *flags: str) -> OnSentinel:
        probe = redis_server.url.replace("/0", f"/{probe_db}")
        orchestrator = arq_processes.orchestrator(SPEC, redis=url,
                                                  extra=("--sweep-interval", "1"))
        procs = [arq_processes.worker(SPEC, redis=url, extra=(*BASE_WORKER_FLAGS, *flags),
                                      name=f"worker{i}") for i in range(1, workers + 1)]
        for worker in procs:
            worker.wait_for_output("worker serving graphs", STARTUP_LIMIT)
        wait_registered(master.url, NAMES)
        started.append(Pool(probe, arq_processes, orchestrator, procs,
                            redis.asyncio.Redis.from_url(probe)))
        return OnSentinel(master, replica, sentinel, url, started[-1])

    yield start
    for pool in started:
        for proc in (pool.orchestrator, *pool.workers):
            proc.kill()


async def test_a_cluster_on_sentinel_urls_finishes_its_runs_across_a_failover(
    on_sentinel: Callable[..., OnSentinel],
) -> None:
    cluster = on_sentinel(58, 1)
    pool, probe = cluster.pool, cluster.pool.url
    client = await within(Client.connect(cluster.url, connect_timeout=10), 10)
    try:
        data = {"probe": probe, "tag": uuid.uuid4().hex, "items": [0, 1]}
        handle = await within(client.submit(graphs.gated_fanout.name, data))
        await pool.wait_started(data["tag"], 2)
        redis.Redis(port=cluster.master.port).wait(1, 5000)  # (the replica has every write)
        fail_over(cluster.sentinel, cluster.replica)
        await pool.open_gate(data["tag"])
        assert await within(handle.result(), 60) == graphs.expected_gated(data)
        after = {"probe": probe, "tag": uuid.uuid4().hex, "items": [2]}
        await pool.open_gate(after["tag"])
        assert await within((await client.submit(graphs.gated_fanout.name, after)).result(),
                            60) == graphs.expected_gated(after)
        assert pool.orchestrator.alive() and pool.workers[0].alive()
    finally:
        await client.close()
        await pool.redis.aclose()


def lag_behind(master: RedisServer, replica: RedisServer) -> None:
    """Stop the replica (SIGSTOP) and fill the master's buffer for it past what the kernel's
    socket buffers hold: every write from now on sits in the master's memory only, and is lost
    with it (as an asynchronous replica loses the writes it had not received)."""
    r = redis.Redis(port=master.port)
    r.config_set("client-output-buffer-limit", "replica 0 0 0")  # (never drop the replica)
    r.wait(1, 5000)
    os.kill(replica.process.pid, signal.SIGSTOP)
    chunk, i = b"x" * (4 << 20), 0
    while int(r.info("memory")["mem_clients_slaves"]) < 12 << 20:
        r.set(f"lag:{i}", chunk)
        i += 1
    r.set("lag:marker", 1)  # (the test checks that the failover lost this)
    r.close()


async def test_a_failover_that_loses_the_last_writes_under_load_ends_every_run_once(
    on_sentinel: Callable[..., OnSentinel],
) -> None:
    cluster = on_sentinel(57, 2, "--concurrency", "24")
    master, replica, pool, probe = cluster.master, cluster.replica, cluster.pool, cluster.pool.url
    client = await within(Client.connect(cluster.url, connect_timeout=10, submit_retry=60), 10)

    def inputs(count: int) -> list[dict[str, Any]]:
        return [{"probe": probe, "tag": uuid.uuid4().hex, "items": list(range(1 + i % 3))}
                for i in range(count)]

    async def submit(data: dict[str, Any]) -> RunHandle:
        return await client.submit(graphs.gated_fanout.name, data, run_id=f"r-{data['tag']}")

    rerun, held, unborn = inputs(8), inputs(8), inputs(4)  # 32 nodes running at once
    try:
        handles = {d["tag"]: await within(submit(d)) for d in (*rerun, *held)}
        for data in (*rerun, *held):
            await pool.wait_started(data["tag"], len(data["items"]))
        lag_behind(master, replica)
        # Lost with the master: the ends of `rerun` (the producer is told of them), the
        # creation of `unborn`; `held` nodes are running as it dies.
        for data in rerun:
            await pool.open_gate(data["tag"])
        for data in rerun:
            assert await within(handles[data["tag"]].result(), 60) == graphs.expected_gated(data)
        for data in unborn:
            handles[data["tag"]] = await within(submit(data))
        master.kill()
        os.kill(replica.process.pid, signal.SIGCONT)
        fail_over(cluster.sentinel, replica)
        assert not redis.Redis(port=replica.port).exists("lag:marker"), "nothing was lost"

        for data in held:
            await pool.open_gate(data["tag"])
        for data in unborn:  # its producer is told it is gone, and submits it again
            with pytest.raises(RunNotFoundError):
                await within(handles[data["tag"]].result(), 60)
            await pool.open_gate(data["tag"])
            handles[data["tag"]] = await within(submit(data))

        async def ended(data: dict[str, Any]) -> Any:
            run_id = handles[data["tag"]].run_id
            return await client.handle(run_id, graphs.gated_fanout.name).result()

        runs = (*rerun, *held, *unborn)
        results = await within(asyncio.gather(*(ended(d) for d in runs)), 90)
        assert list(results) == [graphs.expected_gated(d) for d in runs]  # none doubled
        for data in rerun:  # (their outcomes were lost: their nodes ran again)
            assert all([await pool.starts(data["tag"], i) >= 2 for i in data["items"]])
        assert pool.orchestrator.alive() and all(w.alive() for w in pool.workers)
    finally:
        await client.close()
        await pool.redis.aclose()


def test_a_sentinel_url_names_its_sentinels_service_database_and_the_master_s_user() -> None:
    from arqgraph.storage.connection import redis_settings

    settings = redis_settings("redis+sentinel://app:p%40ss%2Fw@s1:26379,s2:26380,s3/main/3")
    assert (settings.host, settings.sentinel, settings.sentinel_master, settings.database) == (
        [("s1", 26379), ("s2", 26380), ("s3", 26379)], True, "main", 3)
    assert (settings.username, settings.password, settings.ssl) == ("app", "p@ss/w", False)
    assert redis_settings("rediss+sentinel://s1/main").ssl
    for bad in ("redis+sentinel://s1:x/main", "redis+sentinel://s1/", "redis+sentinel://s1/m/x"):
        with pytest.raises(ValueError, match="sentinel|service"):
            redis_settings(bad)


async def test_the_lease_thread_gets_a_client_of_its_own_through_the_same_sentinels() -> None:
    """A connection pool serves one event loop: the lease thread's client must not share the
    worker's (it did, and lease renewals failed across a failover), and must follow the
    master through the same sentinels."""
    from redis.asyncio.sentinel import Sentinel as Sentinels
    from redis.asyncio.sentinel import SentinelConnectionPool

    from arqgraph.storage.connection import thread_client

    worker = Sentinels([("s1", 26379), ("s2", 26380)], sentinel_kwargs={"password": "s"},
                       password="m", db=3).master_for("main")
    lease = thread_client(worker)
    pool = lease.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool is not worker.connection_pool
    assert (pool.service_name, pool.connection_kwargs["password"], pool.connection_kwargs["db"]
            ) == ("main", "m", 3)
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs[
        "port"]) for s in pool.sentinel_manager.sentinels] == [("s1", 26379), ("s2", 26380)]
    await lease.aclose()
    await worker.aclose()
