"""`arqgraph serve`'s scoping and extras, driven by `langgraph_sdk` over a real cluster (a
redis-server, an orchestrator, a worker and server processes, as in tests/test_serve.py, on a
keyspace of their own): assistants of one's own, a thread's stream, webhooks, `@auth.on`
handlers keeping two users apart, runs cancelled when their client leaves, threadless crons'
threads, and server processes sharing a port (`--workers`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from arqgraph.server.webhook_policy import LOOPBACK_REFUSED
from tests.conftest import ArqProcesses, RedisServer
from tests.test_cluster import url_for_db, wait_until, within
from tests.test_serve import Served, client, second_server, start_cluster
from tests.test_serve_duties import webhook_receiver

DB = 41  # a keyspace of its own on the shared redis-server
OWNERS = "tests/graphs/serve_project/langgraph.owners.json"
__all__ = ["client"]  # (the fixture, shared with tests/test_serve.py)


@pytest.fixture(scope="module")
def server(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[Served]:
    yield start_cluster(redis_server, arq_processes, DB)


async def test_assistants_of_ones_own_with_versions(client: Any) -> None:
    made = await client.assistants.create("chat", context={"signature": "Ada"},
                                          metadata={"team": "a"}, name="ada")
    aid = made["assistant_id"]
    assert (made["version"], made["config"], made["graph_id"]) == (
        1, {"configurable": {"signature": "Ada"}}, "chat")
    assert (await client.runs.wait(None, aid, input={"log": []}))["log"] == ["greet", "sign:Ada"]
    assert (await client.runs.wait(None, aid, input={"log": []}, config={"configurable": {
        "signature": "Bo"}}))["log"] == ["greet", "sign:Bo"]  # (the run's own wins)
    changed = await client.assistants.update(aid, context={"signature": "Cy"},
                                             metadata={"more": 1})
    assert (changed["version"], changed["metadata"]) == (2, {"team": "a", "more": 1})
    tid = (await client.threads.create())["thread_id"]
    assert (await client.runs.wait(tid, aid, input={"log": []}))["log"] == ["greet", "sign:Cy"]
    assert (await client.runs.list(tid))[0]["assistant_id"] == aid
    assert [v["version"] for v in await client.assistants.get_versions(aid)] == [2, 1]
    assert (await client.assistants.set_latest(aid, 1))["context"] == {"signature": "Ada"}
    assert (await client.assistants.get(aid))["version"] == 1
    found = await client.assistants.search(metadata={"team": "a"})
    assert [a["assistant_id"] for a in found] == [aid]
    await client.assistants.delete(aid)
    with pytest.raises(httpx.HTTPStatusError):
        await client.assistants.get(aid)
    assert all(a["metadata"] == {"created_by": "system"}
               for a in await client.assistants.search(graph_id="chat"))


async def _until_done(parts: AsyncIterator[Any], runs: int) -> list[Any]:
    """A thread stream's parts until `runs` runs are done (it stays open otherwise)."""
    got: list[Any] = []
    async for part in parts:
        got.append(part)
        if sum(p.data.get("status") == "run_done" for p in got if p.event == "metadata") == runs:
            return got
    raise AssertionError("the thread stream ended")


async def test_thread_stream_shows_each_run_and_resumes(client: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.create(tid, "gated", input={"log": [], "gate": str(gate)},
                                     stream_mode=["custom", "values"])
    stream = await client.threads.join_stream(tid)
    joined = await within(anext(stream))  # the first run's metadata: the stream is on it
    gate.touch()
    await within(client.runs.join(tid, first["run_id"]))
    second = await client.runs.create(tid, "gated", input={"gate": str(gate)})
    parts = [joined, *await within(_until_done(stream, 2))]
    done = [i for i, p in enumerate(parts) if p.data.get("status") == "run_done"]
    assert [parts[i].data["run_id"] for i in done] == [first["run_id"], second["run_id"]]
    for run, part in zip((first, second), (parts[:done[0]], parts[done[0] + 1:done[1]]),
                         strict=True):  # each run as its own stream shows it
        alone = [p async for p in client.runs.join_stream(tid, run["run_id"])]
        assert [(p.event, p.data) for p in part] == [(p.event, p.data) for p in alone]
    middle = 3  # a reconnect mid-way through the first run: the rest, none lost or repeated
    rest = await within(_until_done(await client.threads.join_stream(
        tid, last_event_id=parts[middle].id), 2))
    assert [(p.event, p.data, p.id) for p in rest] == [
        (p.event, p.data, p.id) for p in parts[middle + 1:]]


async def test_webhooks_refused_as_langgraph_refuses_them_and_kept_threads(
        client: Any) -> None:
    """With no `webhooks` section, as LangGraph's server: no webhook to this machine, to a
    path of the server, or that is no URL; crons' webhooks alike. (Calls: see
    tests/test_serve_duties.py, whose servers take webhooks to this machine.)"""
    with webhook_receiver() as (url, _):
        for hook, detail in [(url, "Webhook host blocked: loopback IP range"),
                             ("http://localhost:9/hook", "Webhook host blocked: localhost address"),
                             ("/hooks/done", LOOPBACK_REFUSED),
                             ("not-a-url", "Invalid webhook hostname ''"),
                             ("ftp://8.8.8.8/x", "Webhook host blocked: scheme 'ftp' not allowed")]:
            for create in (client.runs.create(None, "chat", input={"log": []}, webhook=hook),
                           client.crons.create("chat", schedule="* * * * *", webhook=hook)):
                with pytest.raises(httpx.HTTPStatusError) as refused:
                    await create
                assert (refused.value.response.status_code,
                        refused.value.response.json()) == (422, {"detail": detail})
    kept = await client.runs.create(None, "chat", input={"log": []}, on_completion="keep")
    await within(client.runs.join(kept["thread_id"], kept["run_id"]))
    assert (await client.threads.get(kept["thread_id"]))["values"] == {
        "log": ["greet", "sign"]}  # (a stateless run's thread, kept)


async def test_auth_on_handlers_keep_users_apart(
        server: Served, redis_server: RedisServer, own_processes: ArqProcesses) -> None:
    from langgraph_sdk.errors import PermissionDeniedError

    _, url = second_server(redis_server, own_processes, project=OWNERS, db=server.db)
    alice = get_client(url=url, headers={"Authorization": "Bearer alice-token"})
    bob = get_client(url=url, headers={"Authorization": "Bearer bob-token"})
    try:
        mine = await alice.threads.create(metadata={"topic": "a"})
        tid = mine["thread_id"]
        assert mine["metadata"] == {"topic": "a", "owner": "alice"}
        assert (await alice.runs.wait(tid, "chat", input={"log": []}))["log"]
        run = (await alice.runs.list(tid))[0]
        assert run["metadata"]["owner"] == "alice"
        theirs = await bob.runs.wait(str(uuid.uuid4()), "chat", input={"log": []},
                                     if_not_exists="create")
        assert theirs["log"]
        bobs = [t["thread_id"] for t in await bob.threads.search()]
        assert [t["thread_id"] for t in await alice.threads.search()] == [tid]
        assert len(bobs) == 1 and tid not in bobs
        assert (await bob.threads.get(bobs[0]))["metadata"]["owner"] == "bob"
        helper = await alice.assistants.create("chat", context={"signature": "Al"})
        assert helper["metadata"] == {"owner": "alice"}
        assert [a["assistant_id"] for a in await alice.assistants.search()] == [
            helper["assistant_id"]]  # (the graph's default one is the system's, not hers)
        assert await bob.assistants.search() == []
        aid = helper["assistant_id"]
        for attempt in (bob.threads.get(tid), bob.threads.get_state(tid), bob.runs.list(tid),
                        bob.assistants.get(aid), bob.runs.wait(None, aid, input={"log": []}),
                        bob.runs.get(tid, run["run_id"]), bob.runs.join(tid, run["run_id"]),
                        bob.runs.wait(tid, "chat", input={"log": []}),
                        bob.threads.update(tid, metadata={"owner": "bob"})):
            with pytest.raises(httpx.HTTPStatusError) as refused:
                await attempt
            assert refused.value.response.status_code == 404  # (not theirs: not found)
        with pytest.raises(PermissionDeniedError):
            await alice.threads.delete(tid)
        cron = await alice.crons.create_for_thread(tid, "chat", schedule="0 0 1 1 *")
        assert cron["metadata"] == {"owner": "alice"}
        assert await bob.crons.search() == []
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await bob.crons.delete(cron["cron_id"])
        assert refused.value.response.status_code == 404
        assert [c["cron_id"] for c in await alice.crons.search()] == [cron["cron_id"]]
        await alice.crons.delete(cron["cron_id"])
        await alice.store.put_item(["alice", "notes"], "n1", {"text": "hi"})
        assert (await alice.store.get_item(["alice", "notes"], "n1"))["value"] == {
            "text": "hi"}
        for refused in (bob.store.get_item(["alice", "notes"], "n1"),
                        bob.store.put_item(["alice", "notes"], "n1", {"text": "mine"})):
            with pytest.raises(PermissionDeniedError):
                await refused
        assert (await alice.threads.get(tid))["metadata"]["owner"] == "alice"
    finally:
        for c in (alice, bob):
            await c.http.client.aclose()


async def test_server_processes_sharing_a_port(
        server: Served, redis_server: RedisServer, own_processes: ArqProcesses) -> None:
    _, url = second_server(redis_server, own_processes, "--workers", "2", db=server.db)
    several = get_client(url=url)
    try:
        outs = await within(asyncio.gather(*[
            several.runs.wait(None, "chat", input={"log": []}) for _ in range(4)]))
        assert outs == [{"log": ["greet", "sign"]}] * 4
    finally:
        await several.http.client.aclose()


async def test_a_client_leaving_cancels_its_run_when_asked(
        client: Any, server: Served, tmp_path: Path) -> None:
    never = str(tmp_path / "never")  # (the gated runs would wait for ever)

    async def cancelled(tid: str) -> bool:
        runs = await client.runs.list(tid)
        return bool(runs) and runs[0]["status"] == "interrupted"

    streamed = (await client.threads.create())["thread_id"]
    parts = client.runs.stream(streamed, "gated", input={"log": [], "gate": never},
                               stream_mode="custom", on_disconnect="cancel")
    async for part in parts:
        if part.event == "custom":  # the run is under way: leave
            break
    await parts.aclose()
    await wait_until(lambda: cancelled(streamed), "the streamed run to be cancelled")

    waited = (await client.threads.create())["thread_id"]
    async with httpx.AsyncClient(timeout=0.5) as leaving:
        with pytest.raises(httpx.ReadTimeout):  # (the client gives up and leaves)
            await leaving.post(f"{server.url}/threads/{waited}/runs/wait",
                               json={"assistant_id": "gated", "on_disconnect": "cancel",
                                     "input": {"log": [], "gate": never}})
    await wait_until(lambda: cancelled(waited), "the waited run to be cancelled")


async def test_a_threadless_crons_threads_go_unless_kept(client: Any, server: Served,
                                                         redis_server: RedisServer) -> None:
    import redis as redis_py

    from arqgraph import protocol

    kept = await client.crons.create("chat", schedule="* * * * * *", input={"log": []},
                                     on_run_completed="keep")
    dropped = await client.crons.create("chat", schedule="* * * * * *", input={"log": []})

    async def threads_of(cron: dict[str, Any]) -> list[Any]:
        return list(await client.threads.search(metadata={"cron_id": cron["cron_id"]},
                                                limit=100))

    await wait_until(lambda: _at_least(threads_of(kept), 2), "two fires of the kept cron")
    for cron in (kept, dropped):
        await client.crons.delete(cron["cron_id"])
    keys = redis_py.Redis.from_url(url_for_db(redis_server, server.db))
    fire_keys = protocol.served_cron_fire_key(dropped["cron_id"], 0)[:-1] + "*"
    assert keys.keys(fire_keys)  # it fired too: its threads are gone once its runs end
    await wait_until(lambda: _none(threads_of(dropped)), "the dropped cron's threads to go")
    assert len(await threads_of(kept)) >= 2


async def _at_least(found: Any, count: int) -> bool:
    return len(await found) >= count


async def _none(found: Any) -> bool:
    return not await found
