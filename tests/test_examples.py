"""The examples of composition and streaming run as their docstrings say, embedded and on a
real cluster: the agents hand off through subgraphs, the tool agents' calls run as tasks of
their own, and the chat tokens reach the producer one by one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ArqProcesses, RedisServer

pytest.importorskip("langchain_core", reason="the chat example needs the langchain extra")

from examples import agents, chat_tokens, tool_agents  # noqa: E402

DATABASE = 7


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[str]:
    url = redis_server.url.rsplit("/", 1)[0] + f"/{DATABASE}"
    specs = ("examples.agents:graph", "examples.chat_tokens:graph",  # a queue each
             "examples.tool_agents:graph")
    procs = [arq_processes.orchestrator(spec, redis=url, name=f"ex-orchestrator-{i}",
                                        extra=("--queue", f"arqgraph:example{i}"))
             for i, spec in enumerate(specs)]
    procs += [arq_processes.worker(spec, redis=url, name=f"ex-worker-{i}",
                                   extra=("--poll-delay", "0.05", "--queue", f"arqgraph:example{i}"))
              for i, spec in enumerate(specs)]
    for proc in procs:
        proc.wait_for_output("serving graphs", timeout=60)
    yield url
    for proc in procs:
        proc.terminate()


async def agent_steps(cluster: str | None) -> list[tuple[str, ...]]:
    runnable = agents.graph.with_cluster(cluster) if cluster else agents.graph
    return [tuple(p.split(":")[0] for p in ns) + tuple(update)
            async for ns, update in runnable.astream({"topic": "t"}, subgraphs=True)]


async def tool_steps(cluster: str | None) -> list[tuple[Any, ...]]:
    from langchain_core.messages import HumanMessage

    runnable = tool_agents.graph.with_cluster(cluster) if cluster else tool_agents.graph
    return [(tuple(p.split(":")[0] for p in ns), node, update["messages"][-1].content)
            async for ns, chunk in runnable.astream(
                {"messages": [HumanMessage("t")]}, subgraphs=True)
            for node, update in chunk.items()]


async def tokens(cluster: str | None) -> list[str]:
    from langchain_core.messages import HumanMessage

    runnable = chat_tokens.graph.with_cluster(cluster) if cluster else chat_tokens.graph
    return [chunk.content async for chunk, _ in runnable.astream(
        {"messages": [HumanMessage("a b")]}, stream_mode="messages") if chunk.content]


@pytest.mark.parametrize("where", ["embedded", "cluster"])
def test_examples_run(where: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("cluster") if where == "cluster" else None
    steps = asyncio.run(agent_steps(url))
    assert sorted(steps[:3]) == [("researcher", "search")] * 3
    assert steps[3:] == [("researcher",), ("writer", "write"), ("writer",)]
    assert asyncio.run(tokens(url)) == ["you ", "asked: ", "a ", "b "]
    steps = asyncio.run(tool_steps(url))
    assert sorted(steps[1:4]) == [(("researcher",), "tools", f"3 sources on t {aspect}")
                                  for aspect in ("forums", "news", "papers")]
    assert steps[-1] == ((), "writer", "A short piece on t, from 3 notes. (8 words)")
