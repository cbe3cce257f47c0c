"""The whole cluster as a Redis user with the minimal ACL of docs/reliability.md: only the
commands, key patterns and channels listed there; Redis's ACL log shows nothing was denied.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from arqgraph.client import Client
from arqgraph.errors import RunCancelledError, SerializationError
from arqgraph.protocol import scripts
from arqgraph.types import Command
from tests.conftest import ArqProcesses, RedisServer, RedisServers
from tests.graphs import fault_graphs as graphs
from tests.test_cluster import STARTUP_LIMIT, wait_registered, within
from tests.test_worker_faults import BASE_WORKER_FLAGS, SPEC, Pool

# The minimal ACL, as docs/reliability.md gives it (keep the two the same).
COMMANDS = (
    "+ping +hello +auth +select +client|setname +info +config|get +memory|stats "
    "+eval +evalsha +script|load +multi +exec +discard +watch +unwatch "
    "+get +set +setex +psetex +del +unlink +exists +expire +pexpire +ttl +pttl +incr "
    "+hset +hsetnx +hget +hmget +hgetall +hkeys +hdel +hexists +hincrby +hstrlen "
    "+zadd +zrem +zscore +zmscore +zrange +zrangebyscore +zcard +zincrby +zremrangebyscore "
    "+time +mget +brpop +sadd +srem +smembers +sismember +sunion "
    "+lpush +rpush +lrange +ltrim +llen +lmpop +blmpop "
    "+xadd +xread +xrange +xrevrange +xdel +xinfo|stream +publish +subscribe +unsubscribe +scan"
)
KEYS = "~arqgraph:* ~arq:*"
CHANNELS = "&arqgraph:*"


def test_the_minimal_acl_lets_every_script_run_and_is_the_one_documented() -> None:
    """Scripts run with their caller's rights: a command a script calls that the ACL lacks
    fails only when that script runs. The documented ACL is this test's."""
    allowed = set(re.findall(r"\+([a-z|]+)", COMMANDS))
    called = {name.lower() for text in scripts.__dict__.values() if isinstance(text, str)
              for name in re.findall(r"(?:redis\.call|chunked)\('([A-Z]+)'", text)}
    assert called and called - allowed == set()
    documented = (Path(__file__).parent.parent / "docs" / "reliability.md").read_text()
    assert " ".join(COMMANDS.split()) in " ".join(documented.split())


async def test_the_cluster_runs_as_a_user_with_the_minimal_acl(
    redis_servers: RedisServers, redis_server: RedisServer, arq_processes: ArqProcesses,
) -> None:
    server = redis_servers.start()
    admin = redis.asyncio.Redis.from_url(server.url)
    version = tuple(int(v) for v in (await admin.info("server"))["redis_version"].split(".")[:2])
    greeting = ["+client|setinfo"] if version >= (7, 2) else []  # (redis-py's, from 7.2 on)
    await admin.execute_command("ACL", "SETUSER", "arqgraph", "on", ">p@ss:w/rd", "resetkeys",
                                *KEYS.split(), "resetchannels", CHANNELS, "-@all",
                                *COMMANDS.split(), *greeting)
    url = f"redis://arqgraph:p%40ss%3Aw%2Frd@127.0.0.1:{server.port}/0"
    probe = redis_server.url.replace("/0", "/59")  # the nodes' probes: not this user's
    orchestrator = arq_processes.orchestrator(  # (a short history: its pruning runs too)
        SPEC, redis=url, extra=("--sweep-interval", "1", "--history-depth", "2"))
    worker = arq_processes.worker(SPEC, redis=url, extra=BASE_WORKER_FLAGS, name="worker1")
    pool = Pool(probe, arq_processes, orchestrator, [worker], redis.asyncio.Redis.from_url(probe))
    worker.wait_for_output("worker serving graphs", STARTUP_LIMIT)
    wait_registered(server.url, [graphs.gated_fanout.name])
    client = await within(Client.connect(url, connect_timeout=10), 10)
    try:
        def data(tag: str = "", items: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
            return {"probe": probe, "tag": tag or uuid.uuid4().hex, "items": list(items)}

        async def finished(graph: str, state: dict[str, Any]) -> Any:
            await pool.open_gate(state["tag"])
            return await within((await client.submit(graph, state)).result(), 60)

        fanout = data()
        assert await finished(graphs.gated_fanout.name, fanout) == graphs.expected_gated(fanout)
        inner = data(items=(3,))
        assert await finished(graphs.subgraph_fanout.name, inner) == \
            graphs.expected_subgraph(inner)
        limited = data(f"guarded:{uuid.uuid4().hex}", tuple(range(4)))
        assert (await finished(graphs.limits_graph.name, limited))["done"] == [0, 1, 2, 3]
        paced = data(f"paced:{uuid.uuid4().hex}", (0, 1))
        assert (await finished(graphs.limits_graph.name, paced))["done"] == [0, 1]
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        asked = await within((await client.submit(graphs.asking_graph.name, {"tag": "t"},
                                                  config)).result())
        assert "__interrupt__" in asked
        resumed = await client.submit(graphs.asking_graph.name, Command(resume="yes"), config)
        assert (await within(resumed.result()))["done"] == [1, 2]
        assert (await client.get_state(config)).values["done"] == [1, 2]
        await client.delete_thread(config["configurable"]["thread_id"])
        large = {"size": 64 * 1024}  # (its update and state kept in the thread's blobs)
        assert (await within((await client.submit(graphs.large_graph.name, large)).result())
                ) == {**large, "blob": "x" * large["size"], "done": []}
        with pytest.raises(SerializationError):
            await within((await client.submit(graphs.junk_task.name, "k")).result())
        waiting = data()
        cancelled = await client.submit(graphs.gated_fanout.name, waiting)
        await pool.wait_started(waiting["tag"], 2)
        await cancelled.cancel()
        with pytest.raises(RunCancelledError):
            await within(cancelled.result())
        await client.dead_letters()
        denied = await admin.execute_command("ACL", "LOG")
        assert denied == [], denied
        assert orchestrator.alive() and worker.alive()
        assert "p@ss" not in worker.output() + orchestrator.output()
    finally:
        await client.close()
        await admin.aclose()
        await pool.redis.aclose()
        for proc in (orchestrator, worker):
            proc.kill()
