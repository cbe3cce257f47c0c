"""Seed 001, "Async Patterns for LangGraph Nodes", section 4: Async Generators and Streaming
Responses, on arqgraph (`arqgraph.nodes.AsyncBaseNode` for the document's own base class).

- Async Generators: `StreamingNode` collects five items from an async generator (0.1 s each,
  ~0.5 s) -> `results == [{'item': 0, 'query': q}, ..., {'item': 4, 'query': q}]`
  (`generator_graph`); `StreamingProcessNode` processes each item as it arrives (0.1 s + 0.05 s
  each, ~0.75 s): item i is processed before item i+1 is received (`graph`).
- Streaming Responses: `StreamingLLMNode` joins a chat model's streamed tokens into one
  `AIMessage` (`llm_graph`); `RuntimeStreamNode` also hands each token to the caller while the
  node runs: the document's `runtime.stream.send(chunk)` is LangGraph's (and arqgraph's)
  `runtime.stream_writer(chunk)`, read with `stream_mode="custom"`. Every token reaches the
  caller before the node's final state (`stream_graph`). The model is `standins.FakeLLM`, eight
  tokens 0.05 s apart (~0.4 s); `AIMessage` is langchain-core's when installed, else a message dict.

    python examples/seeds/async_patterns_streaming.py
    arqgraph run examples.seeds.async_patterns_streaming:stream_graph \
        --input '{"messages": [["user", "Why async?"]]}' --stream custom
"""

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

from arqgraph.graph import START, StateGraph, add_messages
from arqgraph.nodes import AsyncBaseNode

try:
    from langchain_core.messages import AIMessage
except ImportError:  # without langchain-core, messages are plain dicts
    def AIMessage(content: str) -> Any:  # type: ignore[no-redef]  # noqa: N802
        return {"role": "assistant", "content": content}

try:
    from examples.seeds.standins import FakeLLM, report, run_traced, sleep
except ModuleNotFoundError:  # run as a script: python examples/seeds/async_patterns_streaming.py
    from standins import FakeLLM, report, run_traced, sleep  # type: ignore[no-redef]


def single_node_graph(state: type, name: str, node: Any) -> Any:
    builder = StateGraph(state)
    builder.add_node(type(node).__name__, node)
    builder.add_edge(START, type(node).__name__)
    return builder.compile(name=f"seeds.streaming.{name}")


def content(message: Any) -> str:
    return message["content"] if isinstance(message, dict) else message.content


# -- Async Generators ----------------------------------------------------------------------------


@dataclass(kw_only=True)
class State:
    query: str
    results: list | None = None
    processed: list | None = None


class StreamingNode(AsyncBaseNode):
    async def execute(self, state):
        """Process streaming data."""
        results = []

        # Consume async generator
        async for item in self.fetch_stream(state.query):
            results.append(item)

        return {"results": results}

    async def fetch_stream(self, query):
        """Async generator - yields items one at a time."""
        for i in range(5):
            await sleep(0.1, f"receive {i}")
            yield {"item": i, "query": query}


# Alternative: Process as they arrive
class StreamingProcessNode(AsyncBaseNode):
    async def execute(self, state):
        """Process items as they stream in."""
        processed = []

        async for item in self.fetch_stream(state.query):
            # Process immediately
            result = await self.process_item(item)
            processed.append(result)

        return {"processed": processed}

    async def fetch_stream(self, query):
        for i in range(5):
            await sleep(0.1, f"receive {i}")
            yield {"data": i}

    async def process_item(self, item):
        await sleep(0.05, f"process {item['data']}")
        return {"processed": item}


generator_graph = single_node_graph(State, "generator", StreamingNode())
graph = single_node_graph(State, "process", StreamingProcessNode())


# -- Streaming Responses -------------------------------------------------------------------------


@dataclass(kw_only=True)
class ChatState:
    messages: Annotated[list, add_messages] = field(default_factory=list)


class StreamingLLMNode(AsyncBaseNode):
    def __init__(self, llm: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm = llm or FakeLLM()

    async def execute(self, state):
        """Stream LLM response tokens."""
        chunks = []

        # Stream tokens
        async for chunk in self.llm.astream(state.messages):
            chunks.append(chunk.content)

            # Optional: yield intermediate updates
            # Note: LangGraph supports streaming updates

        # Combine chunks
        full_response = "".join(chunks)

        return {"messages": [AIMessage(content=full_response)]}


# With runtime streaming
class RuntimeStreamNode(AsyncBaseNode):
    def __init__(self, llm: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm = llm or FakeLLM()

    async def execute(self, state, runtime):
        """Stream using runtime interface."""
        chunks = []

        async for chunk in self.llm.astream(state.messages):
            chunks.append(chunk.content)

            # Stream to runtime (the document: runtime.stream.send(chunk.content))
            if runtime and runtime.stream_writer:
                runtime.stream_writer(chunk.content)

        full_response = "".join(chunks)
        return {"messages": [AIMessage(content=full_response)]}


llm_graph = single_node_graph(ChatState, "llm", StreamingLLMNode())
stream_graph = single_node_graph(ChatState, "runtime_stream", RuntimeStreamNode())


async def main() -> dict[str, Any]:
    """Run every pattern; print results, streamed tokens and timings."""
    out: dict[str, Any] = {}
    print("Async Generators: StreamingNode")
    out["generator"] = await run_traced(generator_graph, {"query": "q"})
    print(out["generator"].result)
    report("StreamingNode", out["generator"].elapsed, 0.5)

    print("\nAsync Generators: StreamingProcessNode (process as they arrive)")
    out["process"] = await run_traced(graph, {"query": "q"})
    print(out["process"].result)
    order = [m["what"] for m in out["process"].marks if m["event"] == "start"]
    print("calls in order:", ", ".join(order))
    report("StreamingProcessNode", out["process"].elapsed, 0.75)

    question = {"messages": [("user", "Why use async nodes?")]}
    print("\nStreaming Responses: StreamingLLMNode")
    out["llm"] = await run_traced(llm_graph, question)
    print("AI:", content(out["llm"].result["messages"][-1]))
    report("StreamingLLMNode", out["llm"].elapsed, 0.4)

    print("\nStreaming Responses: RuntimeStreamNode, tokens as they arrive (stream_mode='custom')")
    events: list[tuple[str, Any]] = []
    print("AI: ", end="", flush=True)
    async for mode, chunk in stream_graph.astream(question, stream_mode=["custom", "values"]):
        events.append((mode, chunk))
        if mode == "custom" and isinstance(chunk, str):
            print(chunk, end="", flush=True)
    print()
    final = [chunk for mode, chunk in events if mode == "values"][-1]
    print("final message:", content(final["messages"][-1]))
    out["stream_events"] = events
    return out


if __name__ == "__main__":
    asyncio.run(main())
