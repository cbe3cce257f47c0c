"""A chat model's tokens streamed from the worker that runs it to the producer, while it writes.

    python examples/chat_tokens.py                       # embedded
    arqgraph up examples.chat_tokens:graph --workers 2 &  # or a cluster, then:
    python examples/chat_tokens.py --cluster redis://127.0.0.1:6379/0

The chat model is a local stand-in (no network): it answers word by word, 0.2 s a word. With
`stream_mode="messages"` each token reaches the producer as `(chunk, metadata)` as soon as the
model makes it; the node that calls the model does not pass its config: arqgraph, as LangGraph,
gives the model the node's callbacks. Needs the `langchain` extra (`pip install
'arqgraph[langchain]'`).
"""

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from arqgraph.graph import START, MessagesState, StateGraph


class SlowEcho(BaseChatModel):
    """Answers "you asked: <question>", a word every 0.2 s."""

    @property
    def _llm_type(self) -> str:
        return "slow-echo"

    def _answer(self, messages: list[BaseMessage]) -> list[str]:
        return [f"{word} " for word in f"you asked: {messages[-1].content}".split()]

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **_: Any) -> ChatResult:
        text = "".join(self._answer(messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _astream(self, messages: list[BaseMessage], stop: Any = None,
                       run_manager: Any = None, **_: Any) -> AsyncIterator[ChatGenerationChunk]:
        for word in self._answer(messages):
            await asyncio.sleep(0.2)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager:
                await run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk


model = SlowEcho()


async def chat(state: MessagesState) -> dict:
    return {"messages": [await model.ainvoke(state["messages"])]}


graph = StateGraph(MessagesState).add_node("chat", chat).add_edge(START, "chat").compile(
    name="chat_tokens")


async def main(cluster: str | None) -> None:
    runnable = graph.with_cluster(cluster) if cluster else graph
    started = time.perf_counter()
    question = {"messages": [HumanMessage("how do tokens reach me so soon?")]}
    async for chunk, metadata in runnable.astream(question, stream_mode="messages"):
        print(f"{time.perf_counter() - started:4.1f}s  [{metadata['langgraph_node']}] "
              f"{chunk.content!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--cluster" else None))
