"""Differential cases of chat models inside nodes, for the "messages" stream mode.

`EchoModel` is a deterministic chat model: it answers "echo: <last message>" a word at a time,
its async stream waiting `delay` seconds before each word, so its tokens arrive while its node
runs, on LangGraph, embedded and on a cluster alike. Registered into
`tests.differential.cases.CASES` on import (cases.py imports this module last).
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from tests.differential.api import Api
from tests.differential.cases import _compile, case


class EchoModel(BaseChatModel):
    delay: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _words(self, messages: list[BaseMessage]) -> list[str]:
        words = f"echo: {messages[-1].content}".split(" ")
        return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **_: Any) -> ChatResult:
        text = "".join(self._words(messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **_: Any
                ) -> Iterator[ChatGenerationChunk]:
        for word in self._words(messages):
            time.sleep(self.delay)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None, **_: Any
                       ) -> AsyncIterator[ChatGenerationChunk]:
        for word in self._words(messages):
            await asyncio.sleep(self.delay)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager:
                await run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk


def _chat_graph(api: Api, name: str, *, sync: bool, tags: tuple[str, ...] = ()) -> Any:
    model: Any = EchoModel(delay=0.01)
    if tags:
        model = model.with_config(tags=list(tags))

    async def chat_async(state: Any) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def chat_sync(state: Any) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def summary(state: Any) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"{len(state['messages'])} messages", id="sum")]}

    return _chat_then_summary(api, name, chat_sync if sync else chat_async, summary)


def _chat_then_summary(api: Api, name: str, chat: Any, summary: Any) -> Any:
    g = api.StateGraph(api.MessagesState)
    g.add_node("chat", chat)
    g.add_node("summary", summary)
    g.add_edge(api.START, "chat")
    g.add_edge("chat", "summary")
    return _compile(g, name)


HELLO = {"messages": [HumanMessage(content="hello there", id="in")]}


@case([HELLO], async_only=True)
def build_messages_async_model(api: Api) -> Any:
    return _chat_graph(api, "messages_async_model", sync=False)


@case([HELLO])
def build_messages_sync_model(api: Api) -> Any:
    return _chat_graph(api, "messages_sync_model", sync=True)


@case([HELLO], async_only=True, note="a model tagged nostream: no tokens, its message whole")
def build_messages_nostream(api: Api) -> Any:
    return _chat_graph(api, "messages_nostream", sync=False, tags=("nostream",))


def _pushing_graph(api: Api, name: str, *, sync: bool) -> Any:
    """A node that pushes messages before it returns (one into the state, one only to the
    stream), then a chat model's answer and its own message."""
    model: Any = EchoModel(delay=0.01)

    def push() -> None:
        api.push_message(AIMessage(content="thinking", id="push-1"))
        api.push_message(AIMessage(content="aside", id="push-2"), state_key=None)

    async def chat_async(state: Any) -> dict[str, Any]:
        push()
        return {"messages": [await model.ainvoke(state["messages"]),
                             AIMessage(content="done", id="own")]}

    def chat_sync(state: Any) -> dict[str, Any]:
        push()
        return {"messages": [model.invoke(state["messages"]), AIMessage(content="done", id="own")]}

    def summary(state: Any) -> dict[str, Any]:
        api.push_message(AIMessage(content=f"{len(state['messages'])} messages", id="sum"))
        return {}

    return _chat_then_summary(api, name, chat_sync if sync else chat_async, summary)


@case([HELLO], async_only=True, note="push_message from an async node")
def build_messages_pushed_async(api: Api) -> Any:
    return _pushing_graph(api, "messages_pushed_async", sync=False)


@case([HELLO], note="push_message from a sync node (run in a thread)")
def build_messages_pushed_sync(api: Api) -> Any:
    return _pushing_graph(api, "messages_pushed_sync", sync=True)


@case([{"messages": [("user", "meow")]}, {"messages": "just text"}])
def build_pydantic_messages_state(api: Api) -> Any:
    """A pydantic state of messages given as tuples or text: valid once `add_messages` has
    made them messages, as LangGraph's first node reads them."""
    from typing import Annotated

    import pydantic
    from langchain_core.messages import AnyMessage

    class Chat(pydantic.BaseModel):
        messages: Annotated[list[AnyMessage], api.add_messages]

    def reply(state: Chat) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"heard {len(state.messages)}", id="r")]}

    g = api.StateGraph(Chat)
    g.add_node("reply", reply)
    g.add_edge(api.START, "reply")
    return _compile(g, "pydantic_messages_state")
