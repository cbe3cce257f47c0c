"""Redis Sentinel: every process and the client take a `redis+sentinel://` URL, and ride a
failover: real redis-servers (a master and its replica) and a real sentinel process.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio

from arqgraph.client import Client
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


async def test_a_cluster_on_sentinel_urls_finishes_its_runs_across_a_failover(
    sentinel_pair: tuple[RedisServer, RedisServer, Sentinel], arq_processes: ArqProcesses,
    redis_server: RedisServer,
) -> None:
    master, replica, sentinel = sentinel_pair
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/{SERVICE}/0"
    probe = redis_server.url.replace("/0", "/58")  # the nodes' probes: not failed over
    orchestrator = arq_processes.orchestrator(SPEC, redis=url, extra=("--sweep-interval", "1"))
    pool = Pool(probe, arq_processes, orchestrator, [], redis.asyncio.Redis.from_url(probe))
    worker = arq_processes.worker(SPEC, redis=url, extra=BASE_WORKER_FLAGS, name="worker1")
    worker.wait_for_output("worker serving graphs", STARTUP_LIMIT)
    wait_registered(master.url, NAMES)
    client = await within(Client.connect(url, connect_timeout=10), 10)
    try:
        data = {"probe": probe, "tag": uuid.uuid4().hex, "items": [0, 1]}
        handle = await within(client.submit(graphs.gated_fanout.name, data))
        await pool.wait_started(data["tag"], 2)
        redis.Redis(port=master.port).wait(1, 5000)  # (the replica has every write so far)
        def failing_over() -> bool:  # (refused until the sentinel knows the replica well)
            try:
                return bool(sentinel.client.sentinel_failover(SERVICE))
            except redis.exceptions.ResponseError:
                return False

        wait_for(failing_over, 30, "the sentinel to start the failover", interval=0.2)
        wait_for(lambda: sentinel.master_port() == replica.port, 30, "the failover")
        await pool.open_gate(data["tag"])
        assert await within(handle.result(), 60) == graphs.expected_gated(data)
        after = {"probe": probe, "tag": uuid.uuid4().hex, "items": [2]}
        await pool.open_gate(after["tag"])
        assert await within((await client.submit(graphs.gated_fanout.name, after)).result(),
                            60) == graphs.expected_gated(after)
        assert orchestrator.alive() and worker.alive()
    finally:
        await client.close()
        await pool.redis.aclose()
        for proc in (orchestrator, worker):
            proc.kill()
