"""`arqgraph serve`'s run options and project extras, driven by `langgraph_sdk` over a real
cluster (a redis-server, an orchestrator, a worker and server processes, as in
tests/test_serve.py, on a keyspace of their own, serving `langgraph.more.json`): `durability`,
the `events` stream mode, prune's `keep_latest`, the store's `store.index` (with an async
embedding), and `http.app`'s custom routes taking a webhook that is a path of the server."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from arqgraph.server.app import build_app
from arqgraph.server.config import load_config
from arqgraph.server.webhooks import post
from tests.conftest import ArqProcesses, RedisServer
from tests.graphs.serve_project import agent
from tests.test_cluster import wait_until, within
from tests.test_serve import Served, client, in_process, start_cluster

DB = 42  # a keyspace of its own on the shared redis-server
MORE = "tests/graphs/serve_project/langgraph.more.json"  # the project, with a store index
__all__ = ["client"]  # (the fixture, shared with tests/test_serve.py)


@pytest.fixture(scope="module")
def server(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[Served]:
    yield start_cluster(redis_server, arq_processes, DB, MORE)


async def test_durability_exit_lists_only_the_last_checkpoint(client: Any) -> None:
    lengths = {}
    for durability in ("exit", "sync", None):
        tid = (await client.threads.create())["thread_id"]
        done = await within(client.runs.wait(tid, "chat", input={"log": []},
                                             durability=durability))
        assert done == {"log": ["greet", "sign"]}
        history = await client.threads.get_history(tid, limit=100)
        assert history[0]["values"] == done
        lengths[durability] = len(history)
    assert lengths == {"exit": 1, "sync": 4, None: 4}  # (input, start, greet, sign)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.wait(None, "chat", input={"log": []}, durability="often")
    assert refused.value.response.status_code == 422


async def test_prune_keep_latest_keeps_the_state_and_drops_the_history(client: Any) -> None:
    tid = (await client.threads.create())["thread_id"]
    await within(client.runs.wait(tid, "chat", input={"log": []}))
    await within(client.runs.wait(tid, "nested", input={"log": []}))  # (a subgraph's thread)
    before = await client.threads.get_state(tid)
    assert len(await client.threads.get_history(tid, limit=100)) > 4
    assert await client.threads.prune([tid], strategy="keep_latest") == {"pruned_count": 1}
    [only] = await client.threads.get_history(tid, limit=100)
    assert (only["checkpoint_id"], only["values"]) == (before["checkpoint_id"],
                                                       before["values"])
    assert (await client.threads.get_state(tid))["values"] == before["values"]
    again = await within(client.runs.wait(tid, "chat", input={"log": []}))
    assert again["log"] == [*before["values"]["log"], "greet", "sign"]
    assert len(await client.threads.get_history(tid, limit=100)) == 5
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.threads.prune([tid], strategy="keep_some")
    assert refused.value.response.status_code == 422


async def test_store_index_from_the_project_file_ranks_a_search(client: Any) -> None:
    for key, text in (("a", "tea and tea"), ("b", "coffee"), ("c", "water and tea")):
        await client.store.put_item(["drinks"], key, {"text": text})
    found = (await client.store.search_items(["drinks"], query="tea"))["items"]
    assert [i["key"] for i in found] == ["a", "c", "b"]  # (by cosine of the toy vectors)
    assert found[0]["score"] > found[1]["score"] > found[2]["score"] == 0
    plain = (await client.store.search_items(["drinks"]))["items"]
    assert sorted(i["key"] for i in plain) == ["a", "b", "c"]


async def test_an_async_embedding_serves_the_server_and_the_nodes(client: Any) -> None:
    """The project's `embed` and the `remember` graph's are async functions: the server
    embeds the items put through it, the workers those their nodes put (async node) and the
    queries of both the async and the sync store API."""
    drinks = {"x": "coffee", "y": "tea and tea", "z": "water and tea"}
    done = await within(client.runs.wait(None, "remember", input={
        "drinks": drinks, "query": "tea", "found": []}))
    assert done["found"] == [["y", "z", "x"], ["y", "z", "x"]]
    found = (await client.store.search_items(["cellar"], query="water"))["items"]
    assert (found[0]["key"], [i["score"] for i in found[1:]]) == ("z", [0, 0])
    await client.store.put_item(["cellar"], "w", {"text": "water water"})
    found = (await client.store.search_items(["cellar"], query="water"))["items"]
    assert [i["key"] for i in found][:2] == ["w", "z"]
    assert found[0]["score"] == pytest.approx(1.0)


def shown_events(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """astream_events' events with each run id as the order of its run's first event (ids
    are made afresh per run)."""
    order: dict[str, int] = {}
    for event in events:
        order.setdefault(event["run_id"], len(order))
    return [(e["event"], e["name"], order[e["run_id"]], [order[p] for p in e["parent_ids"]],
             e["tags"], e["data"], e["metadata"].get("langgraph_node"),
             e["metadata"].get("langgraph_step")) for e in events]


async def test_events_mode_streams_astream_events(client: Any) -> None:
    expected = [e async for e in agent.chat.astream_events({"log": []}, version="v2")
                if not (e["event"] == "on_chain_stream" and not e["parent_ids"])]
    tid = (await client.threads.create())["thread_id"]
    parts = [p async for p in client.runs.stream(tid, "chat", input={"log": []},
                                                 stream_mode=["events", "updates"])]
    assert parts[0].event == "metadata"
    events = [p.data for p in parts if p.event == "events"]
    assert shown_events(events) == shown_events(expected)
    updates = [["updates", p.data] for p in parts if p.event == "updates"]
    assert updates == await in_process(agent.chat, {"log": []}, ["updates"])
    # each node's update comes after its chain run's end, as in process
    order = [(p.event, p.data.get("event"), p.data.get("name")) for p in parts[1:]]
    assert order.index(("updates", None, None)) > order.index(
        ("events", "on_chain_end", "greet"))
    run = (await client.runs.list(tid))[0]
    again = [p async for p in client.runs.join_stream(tid, run["run_id"])]
    assert [(p.event, p.data) for p in again] == [(p.event, p.data) for p in parts]

    failed = [p async for p in client.runs.stream(None, "fails", input={"log": []},
                                                  stream_mode="events")]
    assert [(p.data["event"], p.data["name"]) for p in failed if p.event == "events"][-1] \
        == ("on_chain_start", "explode")  # (LangChain's events tell no chain's error)
    assert (failed[-1].event, failed[-1].data["message"]) == ("error", "boom")


async def test_a_webhook_that_is_a_path_calls_the_custom_app(client: Any, server: Served
                                                             ) -> None:
    run = await client.runs.create(None, "chat", input={"log": []}, webhook="/hooks/done")
    async with httpx.AsyncClient(base_url=server.url) as http:
        async def called() -> Any:
            got = (await http.get("/hooks/seen")).json()
            return [c for c in got["calls"] if c["body"]["run_id"] == run["run_id"]]

        [call] = await wait_until(called, "the webhook's call to the custom route")
        assert (call["body"]["status"], call["body"]["values"], call["x-hook"]) == (
            "success", {"log": ["greet", "sign"]}, "from-project")
        shown = await http.get("/hooks/seen")
        assert shown.json()["started"] is True  # (the custom app's lifespan ran)
        # its middleware wraps the API's routes too, as in LangGraph
        assert (await http.get("/info")).headers["x-custom-app"] == "yes"


def test_custom_routes_pass_the_auth_hook_unless_asked_and_its_own_calls(
        tmp_path: Path) -> None:
    """As LangGraph's server: `http.app`'s routes are open unless
    `http.enable_custom_route_auth`; the API's need the hook's admission; the server's own
    call to a webhook that is a path passes it."""
    from starlette.testclient import TestClient

    here = Path(__file__).resolve().parent / "graphs" / "serve_project"
    for path in (here / "agent.py", here / "auth.py", here / "hooks.py", here / "embed.py"):
        (tmp_path / path.name).write_text(path.read_text())
    project = tmp_path / "langgraph.json"
    guarded = {}
    for guard in (False, True):
        project.write_text(json.dumps({
            "graphs": {"chat": "./agent.py:chat"}, "auth": {"path": "./auth.py:auth"},
            "http": {"app": "./hooks.py:app", "enable_custom_route_auth": guard,
                     "cors": {"allow_origins": ["https://ui.example"]}}}))
        app = build_app(load_config(str(project), []), "redis://unused")
        http = TestClient(app)  # (no lifespan: no Redis needed)
        guarded[guard] = http.post("/hooks/done", json={"run_id": "r"}).status_code
        assert http.get("/info").status_code == 401
        preflight = http.options("/hooks/done", headers={
            "Origin": "https://ui.example", "Access-Control-Request-Method": "POST"})
        assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
        asyncio.run(post(app, "/hooks/done", {"run_id": f"own-{guard}"}, {"x-hook": "h"}))
    assert guarded == {False: 200, True: 401}
    calls = sys.modules["hooks"].calls  # (the project's module, as the server loaded it)
    assert [c["body"]["run_id"] for c in calls] == ["r", "own-False", "own-True"]
