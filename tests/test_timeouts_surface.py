"""LangGraph's other timeouts, against LangGraph: a graph's `step_timeout` (the run raises
TimeoutError, the step's node that finished in time has its update streamed), a `Send`'s own
timeout policy (it replaces its node's), `@task(timeout=...)` and `@entrypoint(timeout=...)`
(NodeTimeoutError naming the task or entrypoint), and their refusal of sync functions when they
are declared. On the embedded default here, on a real cluster in
tests/test_differential_cluster.py (test_timeouts_on_a_cluster): there the step timeout travels
with the run, the Send's policy in its step's checkpoint."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")

from tests.differential.api import REFERENCE  # noqa: E402
from tests.graphs.timeout_graphs import BUILDS, IDLE  # noqa: E402


def outcome(prefix: str, name: str, cluster: str | None = None) -> tuple[Any, ...]:
    """The updates streamed before the run failed, and its error as LangGraph's tests see it."""
    build, value = BUILDS[name]
    graph = build(prefix)
    if cluster is not None:
        graph = graph.with_cluster(cluster)
    if name == "step":
        graph.step_timeout = 0.2  # (an attribute of the graph object, as LangGraph's)
    updates: list[Any] = []

    async def run() -> None:
        async for chunk in graph.astream(value, stream_mode="updates"):
            updates.append(chunk)

    with pytest.raises(Exception) as caught:  # noqa: B017 - which one is compared below
        asyncio.run(run())
    error = caught.value
    shown = {k: getattr(error, k, None) for k in ("node", "kind", "idle_timeout")
             } if type(error).__name__ == "NodeTimeoutError" else None
    return updates, type(error).__name__, shown


@pytest.mark.parametrize("name", list(BUILDS))
def test_timeouts_are_langgraphs(name: str) -> None:
    expected = outcome(REFERENCE, name)
    if expected[2] is not None:
        assert expected[2]["idle_timeout"] == IDLE
    assert outcome("arqgraph", name) == expected


def test_the_step_timeout_stops_only_the_late_node() -> None:
    updates, kind, _ = outcome("arqgraph", "step")
    assert (updates, kind) == ([{"quick": {"hello": "1"}}], "TimeoutError")


@pytest.mark.parametrize("prefix", [REFERENCE, "arqgraph"])
def test_sync_functions_with_a_timeout_are_refused_when_declared(prefix: str) -> None:
    func = importlib.import_module(f"{prefix}.func")
    types = importlib.import_module(f"{prefix}.types")
    for declare in (func.task, func.entrypoint):
        with pytest.raises(ValueError, match="only supported for async nodes"):
            declare(timeout=types.TimeoutPolicy(idle_timeout=IDLE))(lambda value: value)


def test_a_send_timeout_crosses_the_wire() -> None:
    from arqgraph.core import codec
    from arqgraph.types import Send, TimeoutPolicy

    send = Send("n", {"x": 1}, timeout=TimeoutPolicy(idle_timeout=IDLE, refresh_on="heartbeat"))
    assert codec.unpackb(codec.packb(send)) == send
    assert codec.unpackb(codec.packb(Send("n", 1))) == Send("n", 1)
    assert Send("n", 1, timeout=2) == Send("n", 1, timeout=TimeoutPolicy(run_timeout=2.0))
    with pytest.raises(ValueError, match="greater than 0"):
        Send("n", 1, timeout=-1)


def idle_model_tokens(prefix: str) -> list[str]:
    """The tokens streamed by a model inside a node with an idle timeout of 1 s, the model
    making a token every 0.3 s for 1.5 s."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessageChunk, HumanMessage
    from langchain_core.outputs import ChatGenerationChunk

    graph_api = importlib.import_module(f"{prefix}.graph")
    types = importlib.import_module(f"{prefix}.types")

    class SlowModel(GenericFakeChatModel):
        async def _astream(self, messages: Any, stop: Any = None, run_manager: Any = None,
                           **kwargs: Any) -> Any:
            for i in range(5):
                await asyncio.sleep(0.3)
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=str(i)))
                if run_manager:
                    await run_manager.on_llm_new_token(str(i), chunk=chunk)
                yield chunk

    model = SlowModel(messages=iter([]))

    async def call_model(state: Any) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = graph_api.StateGraph(graph_api.MessagesState)
    builder.add_node("call_model", call_model, timeout=types.TimeoutPolicy(idle_timeout=1.0))
    builder.add_edge(graph_api.START, "call_model")
    graph = builder.compile()

    async def tokens() -> list[str]:
        return [chunk.content async for chunk, _ in graph.astream(
            {"messages": [HumanMessage(content="hi")]}, stream_mode="messages")]

    return asyncio.run(tokens())


def test_a_models_tokens_refresh_an_idle_timeout() -> None:
    """Under `refresh_on="auto"`, a chat model's callbacks inside the node count as progress,
    as in LangGraph: the model outlives the node's idle timeout."""
    pytest.importorskip("langchain_core", reason="the model is LangChain's")
    expected = idle_model_tokens(REFERENCE)
    assert expected[:5] == ["0", "1", "2", "3", "4"]
    assert idle_model_tokens("arqgraph") == expected
