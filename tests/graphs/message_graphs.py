"""A chat graph whose nodes return langchain-core message objects, for the cluster.

`build_chat(StateGraph, START, END, MessagesState)` builds the graph from the given library's
names, so the very same nodes build the arqgraph graph served by real processes (`chat`, from
`arqgraph.graph`) and the reference graph a test builds from real `langgraph`.

The nodes exercise `add_messages` as a chat agent would: appending AI, tool and human messages,
two parallel writers in one superstep, replacing a message by id, removing one with
`RemoveMessage`, and a message without an id (the reducer gives it one). Nodes also check that
the messages they receive are langchain-core objects again, not dicts.
"""

import asyncio
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)

from arqgraph.graph import END, START, MessagesState, StateGraph


def _require_messages(state: Any) -> list[BaseMessage]:
    messages = state["messages"]
    for message in messages:
        if not isinstance(message, BaseMessage):
            raise TypeError(f"a node received a {type(message).__name__}, not a message")
    return list(messages)


async def think(state: Any) -> dict:
    messages = _require_messages(state)
    question = messages[-1]
    assert isinstance(question, HumanMessage)
    await asyncio.sleep(0.01)
    call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "call-1"}
    return {"messages": [AIMessage(content=f"let me compute: {question.content}", id="ai-think",
                                   tool_calls=[call])]}


def tool(state: Any) -> dict:
    last = _require_messages(state)[-1]
    assert isinstance(last, AIMessage) and last.tool_calls
    call = last.tool_calls[0]
    result = call["args"]["a"] + call["args"]["b"]
    return {"messages": [ToolMessage(content=str(result), tool_call_id=call["id"], id="tool-1")]}


def draft(state: Any) -> dict:
    tool_message = _require_messages(state)[-1]
    assert isinstance(tool_message, ToolMessage)
    return {"messages": [AIMessage(content=f"draft: the sum is {tool_message.content}",
                                   id="ai-draft")]}


def critic(state: Any) -> dict:  # runs in the same superstep as `draft`
    return {"messages": [HumanMessage(content="keep it short", id="human-critic"),
                         AIMessage(content="noted, no id given")]}


def answer(state: Any) -> dict:
    messages = _require_messages(state)
    drafted = next(m for m in messages if m.id == "ai-draft")
    tool_message = next(m for m in messages if isinstance(m, ToolMessage))
    return {"messages": [
        AIMessage(content=f"2 + 3 = {tool_message.content}", id=drafted.id),  # replaces it
        RemoveMessage(id="human-critic"),
        HumanMessage(content=f"thanks, {len(messages)} messages so far", id="human-thanks"),
    ]}


def build_chat(graph_cls: Any, start: Any, end: Any, state_cls: Any, **compile_kwargs: Any) -> Any:
    g = graph_cls(state_cls)
    g.add_node("think", think)
    g.add_node("tool", tool)
    g.add_node("draft", draft)
    g.add_node("critic", critic)
    g.add_node("answer", answer)
    g.add_edge(start, "think")
    g.add_edge("think", "tool")
    g.add_edge("tool", "draft")
    g.add_edge("tool", "critic")
    g.add_edge(["draft", "critic"], "answer")
    g.add_edge("answer", end)
    return g.compile(**compile_kwargs)


chat = build_chat(StateGraph, START, END, MessagesState, name="cluster_messages")


def chat_input() -> dict:
    return {"messages": [HumanMessage(content="what is 2 + 3?", id="human-1")]}
