"""`arqgraph serve` driven by LangGraph's own clients (`langgraph_sdk`, async and sync, and
`RemoteGraph`), over a real cluster: a redis-server, an orchestrator and a worker process, and
the server as a process of its own reading `tests/graphs/serve_project/langgraph.json`.

What the clients read is compared with what the same graphs give in process (embedded).
Runs that must still be running when a test acts wait on a gate file the test creates.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import ConflictError

from arqgraph.loader import GraphSpecError
from arqgraph.server.config import default_assistant_id, load_config
from arqgraph.server.shapes import jsonable
from tests.conftest import REPO_ROOT, ArqProcess, ArqProcesses, RedisServer, wait_for
from tests.graphs.serve_project import agent
from tests.test_cluster import STARTUP_LIMIT, url_for_db, wait_until, within

DB = 40  # a keyspace of its own on the shared redis-server
SPECS = [f"tests.graphs.serve_project.agent:{name}" for name in ("chat", "ask", "gated",
                                                                     "nested", "fails",
                                                                     "replies", "remember")]
PROJECT = "tests/graphs/serve_project/langgraph.json"
LG_PROJECT = "tests/graphs/serve_project_lg/langgraph.json"  # LangGraph's twins


@dataclass
class Served:
    url: str
    db: int = DB


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ok", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start_cluster(redis_server: RedisServer, processes: ArqProcesses, db: int,
                  project: str = PROJECT, env: dict[str, str] | None = None) -> Served:
    """An orchestrator, a worker and a server of the project's graphs on keyspace `db`."""
    from bench.cluster import free_port

    redis_url = url_for_db(redis_server, db)
    orchestrator = processes.orchestrator(*SPECS, redis=redis_url,
                                          extra=("--sweep-interval", "1"))
    worker = processes.worker(*SPECS, redis=redis_url, extra=("--poll-delay", "0.05"))
    port = free_port()
    processes.start("server", "serve", "--config", project, "--redis", redis_url,
                    "--port", str(port), env=env)
    for proc in (orchestrator, worker):
        proc.wait_for_output("serving" if proc is worker else "orchestrator", STARTUP_LIMIT)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url), STARTUP_LIMIT, "the server to answer /ok")
    return Served(url, db)


@pytest.fixture(scope="module")
def server(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[Served]:
    yield start_cluster(redis_server, arq_processes, DB)


@pytest.fixture
async def client(server: Served) -> AsyncIterator[Any]:
    c = get_client(url=server.url)
    yield c
    await c.http.client.aclose()


async def in_process(graph: Any, input: Any, modes: list[str]) -> list[list[Any]]:
    return [[mode, jsonable(payload)]
            async for mode, payload in graph.astream(input, stream_mode=modes)]


def second_server(redis_server: RedisServer, processes: ArqProcesses, *flags: str,
                  project: str = PROJECT, db: int = DB,
                  env: dict[str, str] | None = None) -> tuple[ArqProcess, str]:
    """One more server process on the cluster of keyspace `db`, answering; and its URL."""
    from bench.cluster import free_port

    port = free_port()
    other = processes.start("server-b", "serve", "--config", project, "--redis",
                            url_for_db(redis_server, db), "--port", str(port), *flags, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url) or not other.alive(), STARTUP_LIMIT,
             "the second server to answer /ok")
    assert other.alive(), other.logs()
    return other, url


def test_assistants_listed_with_fixed_ids(server: Served) -> None:
    sync = get_sync_client(url=server.url)
    found = {a["graph_id"]: a for a in sync.assistants.search()}
    assert sorted(found) == ["ask", "chat", "fails", "gated", "nested", "reply"]
    assert found["chat"]["assistant_id"] == default_assistant_id("chat")
    assert sync.assistants.get(found["chat"]["assistant_id"])["graph_id"] == "chat"
    drawing = sync.assistants.get_graph("chat")
    assert {n["id"] for n in drawing["nodes"]} >= {"greet", "sign"}
    for xray in (True, 1, False):
        assert (sync.assistants.get_graph("nested", xray=xray)
                == jsonable(agent.nested.get_graph(xray=xray).to_json()))
    assert any(":" in n["id"] for n in sync.assistants.get_graph("nested", xray=True)["nodes"])
    assert httpx.get(f"{server.url}/assistants/nested/graph?xray=deep").status_code == 422
    assert "log" in sync.assistants.get_schemas("chat")["input_schema"]["properties"]
    with pytest.raises(httpx.HTTPStatusError) as refused:
        sync.threads.get("not-a-uuid")
    assert refused.value.response.status_code == 400
    for bad in ({"assistant_id": "nope"}, {"assistant_id": "chat", "stream_mode": "nonsense"},
                {"assistant_id": "chat", "command": "resume"},
                {"assistant_id": "chat", "checkpoint": "c1"}):
        answer = httpx.post(f"{server.url}/runs", json=bad)
        assert answer.status_code == 422 and answer.json()["detail"], bad


async def test_wait_and_stream_match_in_process(client: Any) -> None:
    thread = await client.threads.create()
    result = await within(client.runs.wait(thread["thread_id"], "chat", input={"log": []}))
    assert result == jsonable(await agent.chat.ainvoke({"log": []}))
    runs = await client.runs.list(thread["thread_id"])
    assert [(r["status"], r["assistant_id"]) for r in runs] == [
        ("success", default_assistant_id("chat"))]

    modes = ["updates", "values", "custom"]
    thread = await client.threads.create()
    parts = [[p.event, p.data] async for p in client.runs.stream(
        thread["thread_id"], "chat", input={"log": []}, stream_mode=modes)]
    assert parts[0][0] == "metadata" and parts[0][1]["run_id"]
    assert parts[1:] == await in_process(agent.chat, {"log": []}, modes)
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {"log": ["greet", "sign"]} and state["next"] == []


async def test_thread_state_updates_history_and_search(client: Any) -> None:
    thread = await client.threads.create(metadata={"owner": "ada"})
    tid = thread["thread_id"]
    await within(client.runs.wait(tid, "chat", input={"log": []}))
    written = await client.threads.update_state(tid, {"log": ["edited"]}, as_node="sign")
    state = await client.threads.get_state(tid)
    assert state["checkpoint"]["checkpoint_id"] == written["checkpoint"]["checkpoint_id"]
    assert state["values"]["log"] == ["greet", "sign", "edited"]
    history = await client.threads.get_history(tid, limit=100)
    assert history[0]["checkpoint_id"] == state["checkpoint_id"]
    assert [h["metadata"]["source"] for h in history][-1] == "input"
    named = {"checkpoint_id": history[1]["checkpoint_id"]}  # (langgraph-api: that one alone)
    assert [h["checkpoint_id"] for h in await client.threads.get_history(
        tid, checkpoint=named)] == [history[1]["checkpoint_id"]]
    found = await client.threads.search(metadata={"owner": "ada", "graph_id": "chat"})
    assert [t["thread_id"] for t in found] == [tid] and found[0]["status"] == "idle"
    assert await within(client.runs.wait(None, "chat", input={"log": []})) == {
        "log": ["greet", "sign"]}  # a stateless run
    copy = await client.threads.copy(tid)
    assert copy["values"] == state["values"] and copy["thread_id"] != tid
    await within(client.runs.wait(copy["thread_id"], "chat", input={"log": []}))
    assert (await client.threads.get_state(copy["thread_id"]))["values"]["log"] == [
        "greet", "sign", "edited", "greet", "sign"]
    await client.threads.delete(tid)
    with pytest.raises(httpx.HTTPStatusError):
        await client.threads.get(tid)
    assert (await client.threads.get_state(copy["thread_id"]))["values"]["log"][-1] == "sign"
    assert await client.threads.prune([copy["thread_id"], str(uuid.uuid4())]) == {
        "pruned_count": 1}
    with pytest.raises(httpx.HTTPStatusError):
        await client.threads.get(copy["thread_id"])


async def test_subgraph_events_and_state(client: Any) -> None:
    def shown(ns: Any) -> str:  # (task ids differ from run to run)
        return "|".join(part.split(":")[0] for part in ns)

    modes = ["updates", "values"]
    expected = [[f"{mode}|{shown(ns)}" if ns else mode, jsonable(payload)]
                async for ns, mode, payload in agent.nested.astream(
                    {"log": []}, stream_mode=modes, subgraphs=True)]
    thread = await client.threads.create()
    parts = [[p.event, p.data] async for p in client.runs.stream(
        thread["thread_id"], "nested", input={"log": []}, stream_mode=modes,
        stream_subgraphs=True)]
    got = [["|".join(e.split("|")[:1] + [x.split(":")[0] for x in e.split("|")[1:]]), d]
           for e, d in parts[1:]]
    assert got == expected
    history = await client.threads.get_history(thread["thread_id"], limit=100)
    inner = next(h for h in history if h["next"] == ["inner"])
    at = await client.threads.get_state(thread["thread_id"],
                                        checkpoint_id=inner["checkpoint_id"], subgraphs=True)
    assert at["tasks"][0]["name"] == "inner"
    assert at["tasks"][0]["state"]["values"] == {"log": ["greet", "sign"]}


async def test_a_failed_run_reads_error(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    parts = [[p.event, p.data] async for p in client.runs.stream(
        tid, "fails", input={"log": []}, stream_mode="updates")]
    assert parts[1:] == [["updates", {"greet": {"log": ["greet"]}}],
                         ["error", {"error": "ValueError", "message": "boom"}]]
    assert (await client.threads.get(tid))["status"] == "error"
    assert [r["status"] for r in await client.runs.list(tid)] == ["error"]
    with pytest.raises(Exception, match="ValueError: boom"):
        await within(client.runs.wait(tid, "fails", input={"log": []}))


async def test_interrupt_resumed_with_command(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    asked = await within(client.runs.wait(tid, "ask", input={"log": []}))
    question = asked["__interrupt__"][0]
    assert question["value"] == "what is your name?"
    shown = await client.threads.get(tid)
    assert shown["status"] == "interrupted"
    assert [i["id"] for task in shown["interrupts"].values() for i in task] == [question["id"]]
    state = await client.threads.get_state(tid)
    assert state["next"] == ["ask_name"]
    assert state["tasks"][0]["interrupts"][0]["value"] == "what is your name?"
    done = await within(client.runs.wait(tid, "ask", command={"resume": "Ada"}))
    assert done == {"log": ["asked"], "name": "Ada"}
    assert (await client.threads.get(tid))["status"] == "idle"

    tid = (await client.threads.create())["thread_id"]  # a breakpoint, then on
    stopped = await within(client.runs.wait(tid, "chat", input={"log": []},
                                            interrupt_before=["sign"]))
    assert stopped == {"log": ["greet"]}
    assert (await client.threads.get(tid))["status"] == "interrupted"
    assert (await client.threads.get_state(tid))["next"] == ["sign"]
    assert await within(client.runs.wait(tid, "chat")) == {"log": ["greet", "sign"]}


async def read_until_custom(url: str, headers: dict[str, str] | None = None
                            ) -> list[tuple[str, str]]:
    """(event, id) of a run's SSE stream up to its first custom event; then hang up."""
    async with httpx.AsyncClient(timeout=30, headers=headers) as http, \
            http.stream("GET", url) as response:
        return await until_custom(response)


async def until_custom(response: httpx.Response) -> list[tuple[str, str]]:
    """(event, id) of an SSE response's events up to its first custom event."""
    seen: list[tuple[str, str]] = []
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        seen.append((fields["event"], fields["id"]))
        if fields["event"] == "custom":
            break
        fields = {}
    return seen


async def test_background_run_joined_after_a_reconnect(client: Any, server: Served,
                                                       tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "gated", input={"log": [], "gate": str(gate)},
                                   stream_mode=["custom", "updates"])
    with pytest.raises(ConflictError):  # a second run on the busy thread: rejected
        await client.runs.create(tid, "gated", input={"gate": str(gate)})
    assert (await client.threads.get(tid))["status"] == "busy"
    before = await read_until_custom(f"{server.url}/threads/{tid}/runs/{run['run_id']}/stream")
    gate.touch()
    rest = [p async for p in client.runs.join_stream(tid, run["run_id"],
                                                     last_event_id=before[-1][1])]
    whole = [p async for p in client.runs.join_stream(tid, run["run_id"])]
    assert [e for e, _ in before] + [p.event for p in rest] == [p.event for p in whole]
    assert [p.data for p in whole if p.event == "custom"] == [{"tick": n} for n in range(3)]
    assert await within(client.runs.join(tid, run["run_id"])) == {
        "log": ["gated", "after"], "gate": str(gate)}


async def test_cancel_reads_interrupted(client: Any, tmp_path: Path) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "gated", input={"gate": str(tmp_path / "never")})
    assert await within(client.runs.cancel(tid, run["run_id"], wait=True)) == {}
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    [again] = await client.runs.create_batch([{"assistant_id": "gated", "thread_id": tid,
                                              "input": {"gate": str(tmp_path / "never")}}])
    await client.runs.cancel_many(thread_id=tid, run_ids=[again["run_id"]])
    await within(client.runs.join(tid, again["run_id"]))
    assert (await client.runs.get(tid, again["run_id"]))["status"] == "interrupted"


def test_remote_graph_runs_like_the_graph(server: Served) -> None:
    remote = RemoteGraph("chat", url=server.url)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    assert remote.invoke({"log": []}, config) == agent.chat.invoke({"log": []})
    assert remote.get_state(config).values == {"log": ["greet", "sign"]}
    updates = list(remote.stream({"log": []}, {"configurable": {"thread_id": str(uuid.uuid4())}},
                                 stream_mode="updates"))
    assert updates == list(agent.chat.stream({"log": []}, stream_mode="updates"))


async def test_store_items(client: Any) -> None:
    await client.store.put_item(["users", "ada"], "prefs", {"tea": "green"})
    item = await client.store.get_item(["users", "ada"], "prefs")
    assert item["value"] == {"tea": "green"}
    found = await client.store.search_items(["users"], filter={"tea": "green"})
    assert [(i["key"], "score" in i) for i in found["items"]] == [("prefs", True)]
    assert ["users", "ada"] in (await client.store.list_namespaces(prefix=["users"]))[
        "namespaces"]
    await client.store.delete_item(["users", "ada"], "prefs")
    assert (await client.store.search_items(["users"]))["items"] == []


async def test_multitask_strategies(client: Any, tmp_path: Path) -> None:
    open_gate, never = tmp_path / "open", str(tmp_path / "never")
    open_gate.touch()
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.wait(tid, "gated", input={"log": [], "gate": str(open_gate)})
    assert first["log"] == ["gated", "after"]

    stuck = await client.runs.create(tid, "gated", input={"log": ["x"], "gate": never})
    rolled = await within(client.runs.wait(tid, "gated", input={"gate": str(open_gate)},
                                           multitask_strategy="rollback"))
    assert rolled["log"] == ["gated", "after", "gated", "after"]  # no "x": rolled back
    with pytest.raises(httpx.HTTPStatusError):
        await client.runs.get(tid, stuck["run_id"])

    stuck = await client.runs.create(tid, "gated", input={"log": ["y"], "gate": never})
    await within(client.runs.wait(tid, "gated", input={"gate": str(open_gate)},
                                  multitask_strategy="interrupt"))
    assert (await client.runs.get(tid, stuck["run_id"]))["status"] == "interrupted"

    gate = tmp_path / "later"
    waiting = await client.runs.create(tid, "gated", input={"log": ["z"], "gate": str(gate)})
    queued = asyncio.ensure_future(client.runs.create(
        tid, "gated", input={"gate": str(open_gate)}, multitask_strategy="enqueue"))
    gate.touch()
    second = await within(queued)
    assert await within(client.runs.join(tid, second["run_id"]))
    assert (await client.runs.get(tid, waiting["run_id"]))["status"] == "success"
    assert (await client.threads.get_state(tid))["values"]["log"][-5:] == [
        "z", "gated", "after", "gated", "after"]


async def test_a_killed_server_leaves_the_stream_to_another(
        client: Any, server: Served, redis_server: RedisServer, own_processes: ArqProcesses,
        tmp_path: Path) -> None:
    other, url = second_server(redis_server, own_processes, "--api-key", "sesame")
    assert httpx.post(f"{url}/assistants/search", json={}).status_code == 401
    keyed = get_client(url=url, api_key="sesame")
    gate = tmp_path / "gate"
    thread = await keyed.threads.create()
    tid = thread["thread_id"]
    run = await keyed.runs.create(tid, "gated", input={"log": [], "gate": str(gate)},
                                  stream_mode="custom")
    before = await read_until_custom(f"{url}/threads/{tid}/runs/{run['run_id']}/stream",
                                     {"x-api-key": "sesame"})
    other.kill()  # kill -9: the run goes on in the cluster
    gate.touch()
    rest = [p async for p in client.runs.join_stream(tid, run["run_id"],
                                                     last_event_id=before[-1][1])]
    assert [e for e, _ in before] + [p.event for p in rest] == ["metadata"] + ["custom"] * 3
    assert [p.data for p in rest] == [{"tick": 1}, {"tick": 2}]


async def test_a_cron_fire_starts_one_run_with_two_servers_up(
        client: Any, server: Served, redis_server: RedisServer,
        own_processes: ArqProcesses) -> None:
    second_server(redis_server, own_processes)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.crons.create("chat", schedule="every minute")
    assert refused.value.response.status_code == 422
    daily = await client.crons.create("chat", schedule="0 9 * * 1-5", timezone="Europe/Paris")
    thread = await client.threads.create()
    tid = thread["thread_id"]
    cron = await client.crons.create_for_thread(tid, "chat", schedule="* * * * * *",
                                                input={"log": []})
    assert {c["cron_id"] for c in await client.crons.search()} >= {
        daily["cron_id"], cron["cron_id"]}

    async def fired() -> bool:
        return len(await client.runs.list(tid, limit=100)) >= 3

    await wait_until(fired, "three fires of the cron")
    await client.crons.delete(cron["cron_id"])
    await client.crons.delete(daily["cron_id"])
    runs = await client.runs.list(tid, limit=100)
    fires = [r["metadata"]["cron_fire"] for r in runs]
    assert len(fires) == len(set(fires))  # one run per fire, though two servers look
    assert {r["metadata"]["cron_id"] for r in runs} == {cron["cron_id"]}


def test_project_files_load_or_say_what_is_wrong(tmp_path: Path) -> None:
    config = load_config(PROJECT, ["talk=tests.graphs.serve_project.agent:chat"])
    assert sorted(config.graphs) == ["ask", "chat", "fails", "gated", "nested", "reply",
                                     "talk"]
    assert config.graphs["chat"].cluster_name == config.graphs["talk"].cluster_name
    assert config.find(default_assistant_id("ask")) is config.graphs["ask"]
    outside = tmp_path / "langgraph.json"
    outside.write_text('{"graphs": {"x": "../elsewhere.py:graph"}}')
    with pytest.raises(GraphSpecError, match="outside the project folder"):
        load_config(str(outside), [])
    outside.write_text('{"graphs": {"x": 3}}')
    with pytest.raises(GraphSpecError, match="graphs.x must be a string"):
        load_config(str(outside), [])
    with pytest.raises(GraphSpecError, match="no graphs to serve"):
        load_config(None, [])


async def users_view(url: str) -> dict[str, Any]:
    """What a client script reads from a server, ids left out: the same script runs against
    arqgraph's server and LangGraph's (`langgraph dev`)."""
    c = get_client(url=url)
    seen: dict[str, Any] = {}
    assistants = await c.assistants.search(graph_id="chat")
    seen["assistant"] = sorted(assistants[0])
    tid = (await c.threads.create())["thread_id"]
    seen["thread_keys"] = sorted(await c.threads.get(tid))
    seen["wait"] = await within(c.runs.wait(tid, "chat", input={"log": []}))
    run = (await c.runs.list(tid))[0]
    seen["run"] = (sorted(set(run) - {"langsmith_session_name"}), run["status"],
                   run["assistant_id"] == assistants[0]["assistant_id"])
    tid = (await c.threads.create())["thread_id"]
    parts = [[p.event, p.data] async for p in c.runs.stream(
        tid, "chat", input={"log": []}, stream_mode=["updates", "values", "custom"])]
    seen["stream"] = [parts[0][0], sorted(parts[0][1]), *parts[1:]]
    parts = [[p.event, p.data] async for p in c.runs.stream(
        None, "reply", input={"log": []}, stream_mode="messages-tuple")]
    seen["messages"] = [(event, data[0]["type"], data[0]["content"], data[0]["id"],
                         data[1]["langgraph_node"]) for event, data in parts[1:]]
    state = await c.threads.get_state(tid)
    seen["state"] = (sorted(state), state["values"], state["next"], state["tasks"])
    tid = (await c.threads.create())["thread_id"]
    asked = await within(c.runs.wait(tid, "ask", input={"log": []}))
    seen["asked"] = [sorted(asked), [i["value"] for i in asked["__interrupt__"]]]
    thread = await c.threads.get(tid)
    seen["interrupted"] = (thread["status"], [[i["value"] for i in v]
                                              for v in thread["interrupts"].values()])
    state = await c.threads.get_state(tid)
    seen["interrupted_state"] = (state["next"], [
        (t["name"], [i["value"] for i in t["interrupts"]]) for t in state["tasks"]])
    seen["resumed"] = await within(c.runs.wait(tid, "ask", command={"resume": "Ada"}))
    seen["idle"] = (await c.threads.get(tid))["status"]
    await c.store.put_item(["compare"], "k", {"v": 1})
    found = (await c.store.search_items(["compare"]))["items"]
    seen["store"] = [(sorted(i), i["value"]) for i in found]
    refused = await c.http.client.post("/runs", json={  # (a webhook to this machine)
        "assistant_id": "chat", "input": {"log": []}, "webhook": "http://127.0.0.1:9/hook"})
    seen["webhook_refused"] = (refused.status_code, refused.json())
    await c.http.client.aclose()
    return seen


async def test_the_same_script_reads_the_same_from_langgraph_dev(
        server: Served, own_processes: ArqProcesses, tmp_path: Path) -> None:
    from bench.cluster import free_port

    port = free_port()
    dev = own_processes.start(  # (in a temp dir: it keeps its state in ./.langgraph_api)
        "langgraph-dev", "dev", "--config", str(REPO_ROOT / LG_PROJECT), "--no-browser",
        "--no-reload", "--port", str(port), module="langgraph_cli", cwd=tmp_path,
        env={"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false",
             "PYTHONPATH": str(REPO_ROOT)})
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url) or not dev.alive(), 60, "langgraph dev to answer /ok")
    assert dev.alive(), dev.logs()
    theirs, ours = await users_view(url), await users_view(server.url)
    assert ours == theirs
    assert theirs["messages"] == [("messages", "ai", "hello there", "reply-1", "reply")]


def test_auth_hook_and_cors_guard_the_routes(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from arqgraph.server.app import build_app

    project = tmp_path / "langgraph.json"
    here = Path(__file__).resolve().parent / "graphs" / "serve_project"
    project.write_text(json.dumps({
        "graphs": {"chat": "./agent.py:chat"}, "auth": {"path": "./auth.py:auth"},
        "http": {"cors": {"allow_origins": ["https://ui.example"]}}}))
    for path in (here / "agent.py", here / "auth.py"):  # (the project folder holds them)
        (tmp_path / path.name).write_text(path.read_text())
    config = load_config(str(project), [])
    http = TestClient(build_app(config, "redis://unused"))  # (no lifespan: no Redis needed)
    assert http.get("/ok").status_code == 200
    refused = http.get("/info")
    assert (refused.status_code, refused.json()) == (401, {"detail": "who are you?"})
    assert http.get("/info", headers={"Authorization": "Bearer let-me-in"}).status_code == 200
    preflight = http.options("/threads", headers={
        "Origin": "https://ui.example", "Access-Control-Request-Method": "POST"})
    assert preflight.headers["access-control-allow-origin"] == "https://ui.example"

