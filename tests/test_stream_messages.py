"""The "messages" stream mode against LangGraph: LLM tokens from chat models inside nodes, and
messages nodes return, as `(message, metadata)`, on LangGraph, on the embedded default and on a
real cluster (the graphs of tests/differential/message_cases.py).

Compared per event: the message's class and content, and the metadata LangGraph gives (node,
step, triggers, path, namespace shape, tags, the model's `ls_*` keys); message ids are compared
by whether they are the same across events. A last test shows the producer gets a token while
its node still runs: the node waits, after its first token, for the consumer to have seen it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ArqProcesses, RedisServer
from tests.differential.api import REFERENCE, Api
from tests.differential.cases import CASES, Case
from tests.test_differential import UUID, _in_thread

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")
pytest.importorskip("langchain_core", reason="chat models are LangChain's")

SPEC = "tests.differential.served:GRAPHS"
DATABASE = 6
MESSAGE_CASES = [c for c in CASES if c.name.startswith("messages_") and "model" in c.name
                 or c.name in ("messages_nostream", "messages_pushed_async",
                               "messages_pushed_sync")]
KEPT = ("langgraph_node", "langgraph_step", "langgraph_triggers", "langgraph_path", "tags",
        "ls_provider", "ls_model_name", "ls_model_type")


def shown(events: list[Any]) -> list[Any]:
    """Events without what differs from run to run; message ids as labels by first use."""
    labels: dict[str, int] = {}
    out = []
    for event in events:
        mode, payload = event if isinstance(event[0], str) else ("messages", event)
        if mode != "messages":
            out.append((mode, UUID.sub("<id>", repr(payload))))
            continue
        message, meta = payload
        label = labels.setdefault(str(message.id), len(labels))
        ns = str(meta.get("langgraph_checkpoint_ns", ""))
        out.append((type(message).__name__, message.content, label,
                    {k: v for k, v in meta.items() if k in KEPT},
                    [part.split(":")[0] for part in ns.split("|")]))
    return out


def stream(api: Api, case: Case, mode: Any, cluster: str | None = None) -> list[Any]:
    def call() -> list[Any]:
        graph = case.build(api)
        if cluster is not None:
            graph = graph.with_cluster(cluster)

        async def consume() -> list[Any]:
            return [e async for e in graph.astream(case.runs[0].input, stream_mode=mode)]

        return shown(asyncio.run(consume()))

    return _in_thread(call)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[str]:
    url = redis_server.url.rsplit("/", 1)[0] + f"/{DATABASE}"
    orchestrator = arq_processes.orchestrator(SPEC, redis=url, name="messages-orchestrator")
    worker = arq_processes.worker(SPEC, redis=url, name="messages-worker",
                                  extra=("--poll-delay", "0.05"))
    orchestrator.wait_for_output("serving graphs", timeout=60)
    worker.wait_for_output("worker serving graphs", timeout=60)
    yield url
    for proc in (orchestrator, worker):
        proc.terminate()


@pytest.mark.parametrize("mode", ["messages", ["messages", "updates"]], ids=["one", "multi"])
@pytest.mark.parametrize("case", MESSAGE_CASES, ids=[c.name for c in MESSAGE_CASES])
def test_messages_match_langgraph(case: Case, mode: Any) -> None:
    expected = stream(Api(REFERENCE), case, mode)
    assert any(e[0] == "AIMessageChunk" for e in expected) or case.name == "messages_nostream"
    assert stream(Api("arqgraph"), case, mode) == expected


@pytest.mark.parametrize("case", MESSAGE_CASES, ids=[c.name for c in MESSAGE_CASES])
def test_messages_on_a_cluster_match_langgraph(case: Case, cluster: str) -> None:
    expected = stream(Api(REFERENCE), case, "messages")
    assert stream(Api("arqgraph"), case, "messages", cluster=cluster) == expected


@pytest.mark.parametrize("where", ["embedded", "cluster"])
def test_the_first_token_arrives_while_its_node_runs(
        where: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The node waits, after its first token, until its caller has seen it (a file the caller
    makes): the token crossed to the caller while the node still ran."""
    from langchain_core.messages import HumanMessage

    from tests.graphs.token_graphs import gated_tokens

    cluster = request.getfixturevalue("cluster") if where == "cluster" else None
    graph = gated_tokens.with_cluster(cluster) if cluster else gated_tokens
    gate = tmp_path / "seen"

    async def consume() -> tuple[list[str], Any]:
        tokens = []
        async for mode, chunk in graph.astream(
                {"messages": [HumanMessage("a b c")], "gate": str(gate), "waited": []},
                stream_mode=["messages", "values"]):
            if mode == "messages":
                tokens.append(chunk[0].content)
                gate.touch()
            else:
                final = chunk
        return tokens, final

    tokens, final = _in_thread(lambda: asyncio.run(consume()))
    assert [t for t in tokens if t] == ["echo: ", "a ", "b ", "c"]  # (LangChain ends with "")
    assert final["waited"] == [True]


def metadata_seen(api: Api, case: Case) -> list[Any]:
    """The whole metadata of each "messages" event of a run given LangGraph's propagated
    configurable keys (and one it keeps out), ids masked."""
    config = {"configurable": {"thread_id": "th-1", "run_id": "run-1", "assistant_id": "a-1",
                               "graph_id": "g-1", "some_api_key": "secret"}}

    def call() -> list[Any]:
        graph = case.build(api)

        async def consume() -> list[Any]:
            return [UUID.sub("<id>", repr(sorted(meta.items()))) async for _, meta in
                    graph.astream(case.runs[0].input, config, stream_mode="messages")]

        return asyncio.run(consume())

    return _in_thread(call)  # type: ignore[no-any-return]


def test_messages_metadata_shows_the_configurable_keys_langgraph_copies() -> None:
    """A run's thread, run, assistant and graph ids show in its messages' metadata, and a
    model's metadata names its node's checkpoint namespace: as LangGraph."""
    case = next(c for c in MESSAGE_CASES if "model" in c.name)
    expected = metadata_seen(Api(REFERENCE), case)
    assert expected and all("th-1" in m and "secret" not in m for m in expected)
    assert metadata_seen(Api("arqgraph"), case) == expected


@pytest.mark.parametrize("where", ["embedded", "cluster"])
def test_a_nodes_own_messages_stream_reaches_its_callers_subgraph_stream(
        where: str, request: pytest.FixtureRequest) -> None:
    """A node that streams an inner graph's "messages" itself reads its chunks, and a caller
    streaming "messages" with subgraphs sees them too, under the node's namespace."""
    [case] = [c for c in CASES if c.name == "node_streams_inner_messages"]
    cluster = request.getfixturevalue("cluster") if where == "cluster" else None

    def run(api: Api, cluster: str | None = None) -> list[Any]:
        def call() -> list[Any]:
            graph = case.build(api)
            graph = graph.with_cluster(cluster) if cluster else graph
            events = graph.stream(case.runs[0].input, stream_mode=["messages", "updates"],
                                  subgraphs=True)
            return shown([(mode, payload) for _, mode, payload in events])

        return _in_thread(call)  # type: ignore[no-any-return]

    expected = run(Api(REFERENCE))
    assert any(e[0] == "AIMessageChunk" for e in expected)
    assert run(Api("arqgraph"), cluster) == expected
