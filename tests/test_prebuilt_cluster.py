"""Prebuilt agents on a real cluster (an orchestrator and two workers over redis-server):
a v2 agent's tool calls are separate jobs, run at once by two worker processes; an agent
paused before its tools, or by a tool's `interrupt()`, resumes on the cluster as embedded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from arqgraph.types import Command
from tests.conftest import ArqProcess, ArqProcesses, RedisServer
from tests.graphs import prebuilt_graphs as graphs
from tests.test_differential import normalize

SPEC = "tests.graphs.prebuilt_graphs:GRAPHS"
DATABASE = 6  # a database of its own on the session's redis-server
QUESTION = {"messages": [HumanMessage("go", id="q")]}


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer, arq_processes: ArqProcesses
            ) -> Iterator[tuple[str, list[ArqProcess]]]:
    url = redis_server.url.rsplit("/", 1)[0] + f"/{DATABASE}"
    orchestrator = arq_processes.orchestrator(SPEC, redis=url, name="prebuilt-orchestrator")
    # one job at a time each: two tool calls in flight at once are on two processes
    workers = [arq_processes.worker(SPEC, redis=url, name=f"prebuilt-worker-{i}",
                                    extra=("--poll-delay", "0.05", "--concurrency", "1"))
               for i in range(2)]
    orchestrator.wait_for_output("serving graphs", timeout=60)
    for worker in workers:
        worker.wait_for_output("worker serving graphs", timeout=60)
    yield url, workers
    for proc in [orchestrator, *workers]:
        proc.terminate()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_a_v2_agents_tool_calls_run_on_two_workers_at_once(
        cluster: tuple[str, list[ArqProcess]]) -> None:
    url, workers = cluster
    config = {"configurable": {"redis": url, "tag": f"spread-{uuid.uuid4().hex}"}}
    out = run(graphs.spread.with_cluster(url).ainvoke(QUESTION, config))
    results = [m.content for m in out["messages"] if m.type == "tool"]
    assert [r.split(":")[0] for r in results] == ["1", "2"]
    pids = {int(r.split(":")[1]) for r in results}
    assert pids == {w.pid for w in workers}, results
    assert out["messages"][-1].content.startswith("done (human: go) with 1:")


def test_interrupt_before_tools_resumes_on_the_cluster(
        cluster: tuple[str, list[ArqProcess]]) -> None:
    url, _ = cluster
    config = {"configurable": {"thread_id": f"reviewed-{uuid.uuid4().hex}"}}
    embedded = {"configurable": {"thread_id": "embedded"}}
    on_cluster = graphs.reviewed.with_cluster(url)

    async def steps(graph: Any, config: dict[str, Any]) -> Any:
        first = await graph.ainvoke(QUESTION, config)
        paused = (await graph.aget_state(config)).next
        return normalize((first, paused, await graph.ainvoke(None, config)))  # (uuids masked)

    assert run(steps(on_cluster, config)) == run(steps(graphs.reviewed, embedded))


def test_a_tools_interrupt_resumes_on_the_cluster(cluster: tuple[str, list[ArqProcess]]) -> None:
    url, _ = cluster
    config = {"configurable": {"thread_id": f"asking-{uuid.uuid4().hex}"}}
    graph = graphs.asking.with_cluster(url)
    first = run(graph.ainvoke(QUESTION, config))
    assert [i.value for i in first["__interrupt__"]] == [{"question": "pay 5?"}]
    out = run(graph.ainvoke(Command(resume="yes"), config))
    assert [m.content for m in out["messages"] if m.type == "tool"] == ["paid 5"]
