"""What `arqgraph serve` must do for a run even if the server that took the run is killed
(`arqgraph.server.duties`): start a run delayed with `after_seconds`, call its webhook once it
ends, and cancel a run with `on_disconnect="cancel"` whose client was served by it, unless the
client came back to another server. Driven by `langgraph_sdk` and httpx over a real cluster (a
redis-server, an orchestrator, a worker and server processes killed with SIGKILL), as in
tests/test_serve.py, on a keyspace of its own."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_py
from langgraph_sdk import get_client

from arqgraph import protocol
from tests.conftest import ArqProcesses, RedisServer
from tests.test_cluster import STARTUP_LIMIT, url_for_db, wait_until, within
from tests.test_serve import (
    Served,
    _answers,
    client,
    second_server,
    start_cluster,
    until_custom,
)

DB = 43  # a keyspace of its own on the shared redis-server
LEASE = 3.0  # seconds a killed server's duties wait for another (shorter than the default)
# The servers take webhooks to this machine (the receivers here listen on 127.0.0.1), over
# http, as LangGraph's server does when `LANGGRAPH_WEBHOOKS` (or `langgraph.json`) says so;
# and send a header filled from the environment.
SHORT_LEASE = {"ARQGRAPH_DUTY_LEASE": str(LEASE), "LG_WEBHOOK_TOKEN": "s3cret",
               "LANGGRAPH_WEBHOOKS": json.dumps({
                   "url": {"disable_loopback": False, "require_https": False},
                   "headers": {"authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}"}})}
TAKEN_OVER = 60.0  # bound on a killed server's duty being done by another
__all__ = ["client"]  # (the fixture, shared with tests/test_serve.py)


@pytest.fixture(scope="module")
def server(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[Served]:
    yield start_cluster(redis_server, arq_processes, DB, env=SHORT_LEASE)


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """An HTTP server taking webhook calls: its URL, and the queue of the bodies it got (each
    with the call's `authorization` header under `__authorization__`)."""
    got: queue.Queue[dict[str, Any]] = queue.Queue()

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.put({**body, "__authorization__": self.headers.get("authorization")})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{receiver.server_port}/hook", got
    finally:
        receiver.shutdown()


def duties_left(redis_server: RedisServer, server: Served) -> set[str]:
    keys = redis_py.Redis.from_url(url_for_db(redis_server, server.db))
    return {m.decode() for m in keys.zrange(protocol.SERVED_DUTIES_KEY, 0, -1)}


async def test_a_delayed_run_starts_though_its_server_was_killed(
        client: Any, server: Served, redis_server: RedisServer,
        own_processes: ArqProcesses) -> None:
    other, url = second_server(redis_server, own_processes, db=server.db, env=SHORT_LEASE)
    b = get_client(url=url)
    tid = (await client.threads.create())["thread_id"]
    with webhook_receiver() as (hook, got):
        run = await b.runs.create(tid, "chat", input={"log": []}, after_seconds=2,
                                  webhook=hook)
        assert run["status"] == "pending"
        other.kill()  # kill -9: another server starts it when due, and calls its webhook
        done = await within(client.runs.join(tid, run["run_id"]), TAKEN_OVER)
        assert done == {"log": ["greet", "sign"]}
        sent = await asyncio.to_thread(got.get, True, TAKEN_OVER)
        assert (sent["run_id"], sent["status"]) == (run["run_id"], "success")
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
    [first, *_] = reversed(await client.threads.get_history(tid, limit=100))
    asked = datetime.fromisoformat(run["created_at"]).timestamp()
    assert datetime.fromisoformat(first["created_at"]).timestamp() >= asked + 2

    # a delayed run cancelled before it starts never does; one waited for streams when due
    later = await client.runs.create(tid, "chat", input={"log": []}, after_seconds=3600)
    assert (await client.runs.get(tid, later["run_id"]))["status"] == "pending"
    assert await client.runs.cancel(tid, later["run_id"], wait=True) == {}
    assert (await client.runs.get(tid, later["run_id"]))["status"] == "interrupted"
    assert f"delayed:{later['run_id']}" not in duties_left(redis_server, server)
    parts = [p async for p in client.runs.stream(tid, "chat", input={"log": []},
                                                 stream_mode="updates", after_seconds=1)]
    assert [p.event for p in parts] == ["metadata", "updates", "updates"]
    assert len((await client.threads.get_state(tid))["values"]["log"]) == 4
    async with httpx.AsyncClient(timeout=STARTUP_LIMIT) as http, http.stream(
            "POST", f"{server.url}/threads/{tid}/runs/stream",
            json={"assistant_id": "chat", "input": {"log": []}, "after_seconds": 3600,
                  "on_disconnect": "cancel"}) as response:
        assert response.status_code == 200  # (the client leaves before the run starts)
    [left, *_] = await client.runs.list(tid)
    await wait_until(lambda: _status_is(client, tid, left["run_id"], "interrupted"),
                     "the run its client left before it started to be cancelled")
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.create(tid, "chat", input={"log": []}, after_seconds=-1)
    assert refused.value.response.status_code == 422
    await b.http.client.aclose()


async def test_a_webhook_gets_the_run_as_langgraph_sends_it(client: Any) -> None:
    with webhook_receiver() as (url, got):
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "chat", input={"log": []}, webhook=url)
        sent = await asyncio.to_thread(got.get, True, STARTUP_LIMIT)
        assert (sent["run_id"], sent["thread_id"], sent["status"], sent["values"]) == (
            run["run_id"], tid, "success", {"log": ["greet", "sign"]})
        assert sent["__authorization__"] == "Bearer s3cret"  # (the project's header)
        await client.runs.create(None, "fails", input={"log": []}, webhook=url)
        sent = await asyncio.to_thread(got.get, True, STARTUP_LIMIT)
        assert (sent["status"], sent["values"], sent["error"]["message"]) == ("error", None,
                                                                              "boom")
        # (the policy still refuses what it does not take: a path, without http.app's routes)
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await client.runs.create(None, "chat", input={"log": []},
                                     webhook="http://169.254.169.254/latest")
        assert (refused.value.response.status_code, refused.value.response.json()) == (
            422, {"detail": "Webhook host blocked: blocked IP range"})


async def test_a_webhook_is_called_once_though_its_server_was_killed(
        client: Any, server: Served, redis_server: RedisServer, own_processes: ArqProcesses,
        tmp_path: Path) -> None:
    other, url = second_server(redis_server, own_processes, db=server.db, env=SHORT_LEASE)
    b = get_client(url=url)
    gate = tmp_path / "gate"
    with webhook_receiver() as (hook, got):
        tid = (await client.threads.create())["thread_id"]
        run = await b.runs.create(tid, "gated", input={"log": [], "gate": str(gate)},
                                  webhook=hook)
        other.kill()  # kill -9 while the run goes on: another server calls the webhook
        gate.touch()
        sent = await asyncio.to_thread(got.get, True, TAKEN_OVER)
        assert (sent["run_id"], sent["status"], sent["values"]["log"]) == (
            run["run_id"], "success", ["gated", "after"])
        await wait_until(lambda: _gone(redis_server, server, f"webhook:{run['run_id']}"),
                         "the webhook's duty to be done")
        assert got.empty()  # (called once: the duty that would call again is gone)
    await b.http.client.aclose()


async def _gone(redis_server: RedisServer, server: Served, duty: str) -> bool:
    return duty not in duties_left(redis_server, server)


def duty_score(redis_server: RedisServer, server: Served, duty: str) -> float | None:
    keys = redis_py.Redis.from_url(url_for_db(redis_server, server.db))
    return keys.zscore(protocol.SERVED_DUTIES_KEY, duty)


async def killed_mid_stream(url: str, tid: str, body: dict[str, Any], other: Any
                            ) -> tuple[list[tuple[str, str]], str]:
    """Stream a run from the server at `url` up to its first custom event, then kill that
    server (kill -9) while still connected: the (event, id) read and the stream's Location."""
    async with httpx.AsyncClient(timeout=STARTUP_LIMIT) as http, \
            http.stream("POST", f"{url}/threads/{tid}/runs/stream", json=body) as response:
        seen = await until_custom(response)
        other.kill()
        location = response.headers["location"]
    return seen, location


async def test_a_killed_servers_client_has_its_run_cancelled_unless_it_comes_back(
        client: Any, server: Served, redis_server: RedisServer, own_processes: ArqProcesses,
        tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    body = {"assistant_id": "gated", "input": {"log": [], "gate": str(gate)},
            "stream_mode": "custom", "on_disconnect": "cancel"}
    tid = (await client.threads.create())["thread_id"]
    other, url = second_server(redis_server, own_processes, db=server.db, env=SHORT_LEASE)
    await killed_mid_stream(url, tid, body, other)
    [run] = await client.runs.list(tid)
    await wait_until(lambda: _status_is(client, tid, run["run_id"], "interrupted"),
                     "the run of the killed server's client to be cancelled", TAKEN_OVER)

    tid = (await client.threads.create())["thread_id"]
    other, url = second_server(redis_server, own_processes, db=server.db, env=SHORT_LEASE)
    seen, location = await killed_mid_stream(url, tid, body, other)
    [run] = await client.runs.list(tid)
    duty = f"watch:{run['run_id']}"
    lapses = duty_score(redis_server, server, duty)
    assert lapses is not None and location.endswith("?cancel_on_disconnect=true")
    assert lapses <= time.time() + LEASE  # (the servers took ARQGRAPH_DUTY_LEASE)
    async with httpx.AsyncClient(timeout=TAKEN_OVER) as http, http.stream(
            "GET", f"{server.url}{location}", headers={"Last-Event-ID": seen[-1][1]}
            ) as response:  # the client comes back to another server, as the SDK does
        lines = response.aiter_lines()
        async for line in lines:
            if line.startswith("event: custom"):  # (the rest of the ticks)
                break
        await wait_until(  # that server follows it past the killed one's lease
            lambda: _renewed_past(redis_server, server, duty, lapses),
            "the run's following to be taken on", TAKEN_OVER)
        gate.touch()
        rest = [line async for line in lines if line.startswith("event: ")]
    assert rest[-1] == "event: custom"  # (the stream asked custom events only)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
    assert duty not in duties_left(redis_server, server)


async def _renewed_past(redis_server: RedisServer, server: Served, duty: str,
                        lapses: float) -> bool:
    score = duty_score(redis_server, server, duty)
    return score is not None and score > lapses + LEASE  # (renewed after the lease lapsed)


async def _status_is(client: Any, tid: str, run_id: str, status: str) -> bool:
    return bool((await client.runs.get(tid, run_id))["status"] == status)


async def test_a_threadless_crons_threads_go_though_the_firing_server_was_killed(
        redis_server: RedisServer, own_processes: ArqProcesses, tmp_path: Path) -> None:
    import os
    import signal

    # (a pool with two servers)
    pool = start_cluster(redis_server, own_processes, DB + 1, env=SHORT_LEASE)
    _, url = second_server(redis_server, own_processes, db=DB + 1, env=SHORT_LEASE)
    c = get_client(url=pool.url)
    gate = tmp_path / "gate"
    cron = await c.crons.create("gated", schedule="* * * * * *",
                                input={"log": [], "gate": str(gate)})
    keys = redis_py.Redis.from_url(url_for_db(redis_server, DB + 1))

    async def a_drop() -> Any:
        return next((m for m in keys.zrange(protocol.SERVED_DUTIES_KEY, 0, -1)
                     if m.startswith(b"drop:")), None)

    duty = await wait_until(a_drop, "a fire's run, whose thread is to go when it ends")
    await c.crons.delete(cron["cron_id"])
    holder = keys.hget(protocol.served_duty_key(duty.decode()), "holder").decode()
    pid = int(holder.split(":")[1])
    os.kill(pid, signal.SIGKILL)  # the server that started the fire (either of the two)
    survivor = get_client(url=url if _answers(url) else pool.url)
    gate.touch()

    async def none_left() -> bool:
        found = await survivor.threads.search(metadata={"cron_id": cron["cron_id"]})
        drops = [m for m in keys.zrange(protocol.SERVED_DUTIES_KEY, 0, -1)
                 if m.startswith(b"drop:")]
        return not found and not drops

    await wait_until(none_left, "the fires' threads to go", TAKEN_OVER)
