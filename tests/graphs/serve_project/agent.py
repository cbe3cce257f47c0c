"""Graphs served over HTTP by tests/test_serve.py, as a LangGraph Platform project would have
them (`langgraph.json` beside this file names them by file path and by module path).

- `chat`: two steps, "greet" then "sign", each writing to `log`; "greet" also writes custom
  events, "sign" signs with the config's `signature` if any.
- `ask`: asks a human for a name (`interrupt`) and writes the answer.
- `nested`: "greet", then a subgraph running "sign".
- `reply`: pushes a chat message (the "messages" stream mode) and writes to `log`.
- `fails`: "greet", then a node that raises ValueError("boom").
- `remember`: puts its input's drinks into the cluster's store (async node), then searches them
  by the input's query with the store's async API and the sync one (sync node): the store's
  index embeds with an async function.
- `gated`: writes a custom event, then waits until the file its input names exists (the
  test's hand on when it ends), then ends: a run that is reliably still running.
"""

from __future__ import annotations

import asyncio
import operator
from pathlib import Path
from typing import Annotated, Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from typing_extensions import TypedDict

from arqgraph.config import get_stream_writer
from arqgraph.graph import END, START, StateGraph
from arqgraph.graph.message import push_message
from arqgraph.store.base import BaseStore
from arqgraph.store.memory import InMemoryStore
from arqgraph.types import StreamWriter, interrupt
from tests.graphs.serve_project.embed import aembed


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    gate: str
    name: str


class Cellar(TypedDict, total=False):
    drinks: dict[str, str]
    query: str
    found: Annotated[list[list[str]], operator.add]


def greet(state: Log, writer: StreamWriter) -> Log:
    """(The writer is injected: LangGraph's twins of these graphs run this node too.)"""
    writer({"greeting": "hello"})
    return {"log": ["greet"]}


def sign(state: Log, config: RunnableConfig) -> Log:
    """Signs with the config's `signature` when one is set (an assistant's own config)."""
    signature = (config.get("configurable") or {}).get("signature")
    return {"log": [f"sign:{signature}" if signature else "sign"]}


def line(name: str, *nodes: Any, store: BaseStore | None = None, state: Any = Log) -> Any:
    """A graph running `nodes` one after the other."""
    builder = StateGraph(state)
    names = [START]
    for node in nodes:
        step = getattr(node, "__name__", "inner")  # (a subgraph: "inner")
        builder.add_node(step, node)
        builder.add_edge(names[-1], step)
        names.append(step)
    builder.add_edge(names[-1], END)
    return builder.compile(name=name, store=store)


chat = line("serve-chat", greet, sign)


def ask_name(state: Log) -> Log:
    return {"name": str(interrupt("what is your name?")), "log": ["asked"]}


ask = line("serve-ask", ask_name)


async def wait_gate(state: Log) -> Log:
    writer = get_stream_writer()
    for n in range(3):
        writer({"tick": n})
    while not Path(state["gate"]).exists():  # the test opens the gate
        await asyncio.sleep(0.02)
    return {"log": ["gated"]}


def after(state: Log) -> Log:
    return {"log": ["after"]}


gated = line("serve-gated", wait_gate, after)


nested = line("serve-nested", greet, line("serve-inner", sign))
"""`chat`'s second step as a subgraph."""


def explode(state: Log) -> Log:
    raise ValueError("boom")


fails = line("serve-fails", greet, explode)


def reply(state: Log) -> Log:
    push_message(AIMessage(content="hello there", id="reply-1"), state_key=None)
    return {"log": ["replied"]}


replies = line("serve-reply", reply)


async def put_drinks(state: Cellar, store: BaseStore) -> Cellar:
    for key, text in state["drinks"].items():
        await store.aput(("cellar",), key, {"text": text})
    found = await store.asearch(("cellar",), query=state["query"])
    return {"found": [[item.key for item in found]]}


def search_drinks(state: Cellar, store: BaseStore) -> Cellar:
    return {"found": [[item.key for item in store.search(("cellar",), query=state["query"])]]}


remember = line("serve-remember", put_drinks, search_drinks, state=Cellar, store=InMemoryStore(
    index={"embed": aembed, "dims": 3, "fields": ["text"]}))
