"""The producer side on a real redis-server: idempotent submits ridden through a Redis outage,
a bounded connect, results of runs whose records vanished; and the maxmemory guard of a Redis
user restricted by an ACL.

No orchestrator runs here: the graph is registered by hand, so a submitted run stays pending and
the tests look at what the producer did (how many runs, which errors) and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis.asyncio

from arqgraph import protocol
from arqgraph.client import CONNECT_TIMEOUT, Client
from arqgraph.core.pregel import TaskOutcome
from arqgraph.errors import RunNotFoundError, ThreadBusyError, UpdateTooLargeError
from arqgraph.protocol import GraphInfo
from tests.conftest import ArqProcesses, RedisServer, RedisServers
from tests.test_cluster import wait_registered, wait_until, within

GRAPH = "producer_graph"


async def registered_client(url: str, **options: Any) -> Client:
    client = await within(Client.connect(url, connect_timeout=10, **options))
    await client.store.register_graph(GraphInfo(name=GRAPH, fingerprint="f",
                                                queue=protocol.DEFAULT_QUEUE))
    return client


async def test_a_submit_retried_with_its_run_id_through_an_outage_makes_one_run(
    redis_servers: RedisServers, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_servers.start(durable=True)
    client = await registered_client(server.url, submit_retry=20)
    try:
        server.kill()
        with caplog.at_level(logging.WARNING, logger="arqgraph.client"):
            submit = asyncio.create_task(client.submit(GRAPH, {"x": 1}, run_id="order-42"))

            async def retrying() -> bool:
                return "submit: lost Redis" in caplog.text

            await wait_until(retrying, "the submit to retry while Redis is away")
            redis_servers.restart(server)
            handle = await within(submit)
        again = await within(client.submit(GRAPH, {"x": 1}, run_id="order-42"))
        assert again.run_id == handle.run_id
        assert await client.redis.smembers(protocol.active_key(GRAPH)) == {
            handle.run_id.encode()}
        on_thread = {"configurable": {"thread_id": "t1"}}
        first = await within(client.submit(GRAPH, {"x": 1}, on_thread, run_id="order-43"))
        second = await within(client.submit(GRAPH, {"x": 1}, on_thread, run_id="order-43"))
        assert first.run_id == second.run_id  # (and no ThreadBusyError: it is that run)
        assert await handle.status() == "pending"
    finally:
        await client.close()


async def test_submits_together_share_one_read_of_the_registration_and_tell_each_run(
    redis_servers: RedisServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submits that find the graph's registration out of date read it once between them; each
    run is listed as active and its orchestrators told by the call that creates it, and a run
    refused for a busy thread is neither."""
    server = redis_servers.start()
    client = await registered_client(server.url)
    reads = 0
    read = client.store.graph_info

    async def counted(name: str) -> GraphInfo | None:
        nonlocal reads
        reads += 1
        return await read(name)

    monkeypatch.setattr(client.store, "graph_info", counted)
    try:
        handles = await within(asyncio.gather(*(client.submit(GRAPH, {"x": i})
                                                for i in range(20))))
        assert reads == 1
        ids = {h.run_id.encode() for h in handles}
        assert await client.redis.smembers(protocol.active_key(GRAPH)) == ids
        notes = await client.redis.lrange(protocol.inbox_key(GRAPH), 0, -1)
        assert {protocol.decode_note(n).run_id.encode() for n in notes} == ids
        on_thread = {"configurable": {"thread_id": "busy"}}
        first = await within(client.submit(GRAPH, {"x": 1}, on_thread))
        with pytest.raises(ThreadBusyError):
            await within(client.submit(GRAPH, {"x": 2}, on_thread))
        assert await client.redis.smembers(protocol.active_key(GRAPH)) == ids | {
            first.run_id.encode()}
        assert await client.redis.llen(protocol.inbox_key(GRAPH)) == 21
    finally:
        await client.close()


async def test_a_submit_gives_up_once_its_retries_outlast_submit_retry(
    redis_servers: RedisServers, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_servers.start()
    client = await registered_client(server.url, submit_retry=1.0)
    try:
        server.kill()  # (and not back)
        with caplog.at_level(logging.WARNING, logger="arqgraph.client"):
            with pytest.raises(redis.exceptions.ConnectionError):
                await within(client.submit(GRAPH, {"x": 1}, run_id="order-44"), 30)
        assert "submit: lost Redis" in caplog.text  # (retried first)
    finally:
        await client.close()


async def test_connect_gives_up_after_its_timeout_naming_the_url_not_the_password() -> None:
    from bench.cluster import free_port

    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConnectionError, match="stayed unreachable for 0.5 s") as failed:
        await within(Client.connect(url, connect_timeout=0.5), 10)
    assert "s3cret" not in str(failed.value)


async def test_connect_gives_up_by_default_instead_of_retrying_for_ever() -> None:
    from bench.cluster import free_port

    with pytest.raises(ConnectionError, match=f"stayed unreachable for {CONNECT_TIMEOUT:g} s"):
        await within(Client.connect(f"redis://127.0.0.1:{free_port()}/0"), 60)


async def test_connect_rides_out_a_redis_that_comes_back_within_its_timeout(
    redis_servers: RedisServers, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_servers.start()
    server.stop()
    with caplog.at_level(logging.DEBUG, logger="arqgraph.connection"):
        connecting = asyncio.create_task(Client.connect(server.url, connect_timeout=60))

        async def retried() -> bool:
            return "unreachable" in caplog.text

        await wait_until(retried, "a failed try")  # (it tried the stopped server and is waiting to try again)
        assert not connecting.done()
        redis_servers.restart(server)
        client = await within(connecting, 60)
    try:
        assert await client.redis.ping()
    finally:
        await client.close()


def test_the_cli_s_connect_timeout_comes_from_its_flag_or_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from arqgraph.cli import main
    from bench.cluster import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["workers", "--redis", url, "--connect-timeout", "0.3"]) == 1
    assert "stayed unreachable for 0.3 s" in capsys.readouterr().err
    monkeypatch.setenv("ARQGRAPH_CONNECT_TIMEOUT", "0.2")
    assert main(["run", "some_graph", "--redis", url]) == 1
    assert "stayed unreachable for 0.2 s" in capsys.readouterr().err


async def test_result_and_stream_of_a_run_whose_records_vanished_raise(
    redis_server: RedisServer,
) -> None:
    client = await registered_client(redis_server.url.replace("/0", "/57"))
    try:
        handle = await within(client.submit(GRAPH, {"x": 1}))
        await client.redis.delete(protocol.run_key(handle.run_id))
        with pytest.raises(RunNotFoundError, match=handle.run_id):
            await handle.result(timeout=20)
        with pytest.raises(RunNotFoundError):
            await within(anext(aiter(handle.stream("values"))))
    finally:
        await client.redis.flushdb()
        await client.close()


async def test_the_maxmemory_guard_works_for_a_user_who_may_not_run_info(
    redis_servers: RedisServers, caplog: pytest.LogCaptureFixture, arq_processes: ArqProcesses,
) -> None:
    server = redis_servers.start()
    admin = redis.asyncio.Redis.from_url(server.url)
    await admin.acl_setuser("noinfo", enabled=True, passwords=["+pw"], keys=["*"],
                            channels=["*"], commands=["+@all", "-info"])
    await admin.acl_setuser("blind", enabled=True, passwords=["+pw"], keys=["*"],
                            channels=["*"], commands=["+@all", "-info", "-config", "-memory"])
    used = int((await admin.info("memory"))["used_memory"])
    await admin.config_set("maxmemory", used + (3 << 20))
    url = f"redis://{{}}:pw@127.0.0.1:{server.port}/0"
    try:
        with caplog.at_level(logging.WARNING, logger="arqgraph.memory"):
            guarded = await within(Client.connect(url.format("noinfo"), connect_timeout=10))
            assert "maxmemory" not in caplog.text
            blind = await within(Client.connect(url.format("blind"), connect_timeout=10))
            assert "may run neither INFO nor CONFIG GET" in caplog.text  # said at start-up
        big = TaskOutcome("t", "big", {"blob": "x" * (2 << 20)})  # (fits; its state would not)
        with pytest.raises(UpdateTooLargeError, match="but Redis has only"):
            await guarded.store.post_outcome(GRAPH, "a.b", "c", big)
        assert await guarded.store.memory.usage() == (used + (3 << 20), pytest.approx(
            used, rel=0.5))
        assert await blind.store.memory.usage() is None
        spec = "tests.graphs.fault_graphs:GRAPHS"  # every process says so as it starts
        for proc in (arq_processes.orchestrator(spec, redis=url.format("blind")),
                     arq_processes.worker(spec, redis=url.format("blind"))):
            proc.wait_for_output("may run neither INFO nor CONFIG GET", 30)
            proc.wait_for_output("serving graphs", 30)  # ... and serves
        wait_registered(server.url, ["gated_fanout"])
        await admin.config_set("maxmemory", 1)  # full: a new run is refused at once
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            await within(blind.submit("gated_fanout", {"items": []}), 10)
        for client in (guarded, blind):
            await client.close()
    finally:
        await admin.aclose()
