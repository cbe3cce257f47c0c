"""A chat node that streams a model's tokens and, after the first, waits until its caller has
seen it: a file the caller makes on its first token, polled, since on a cluster the node runs
in another process (tests/test_stream_messages.py)."""

from __future__ import annotations

import asyncio
import operator
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage

from arqgraph.graph import START, StateGraph
from arqgraph.graph.message import add_messages
from tests.differential.message_cases import EchoModel

SEEN_WITHIN = 30.0  # seconds the node waits for its caller to see its first token


class GatedChat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    gate: str  # the file the caller makes once it has seen the first token
    waited: Annotated[list[bool], operator.add]


async def chat(state: GatedChat) -> dict[str, Any]:
    chunks: list[Any] = []
    waited = []
    async for chunk in EchoModel().astream(state["messages"]):
        chunks.append(chunk)
        if len(chunks) == 1:  # the caller must see this token before the node goes on
            deadline = time.monotonic() + SEEN_WITHIN
            while not Path(state["gate"]).exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            waited.append(Path(state["gate"]).exists())
    return {"messages": [sum(chunks[1:], chunks[0])], "waited": waited}


gated_tokens = (StateGraph(GatedChat).add_node("chat", chat).add_edge(START, "chat")
                .compile(name="gated_tokens"))
