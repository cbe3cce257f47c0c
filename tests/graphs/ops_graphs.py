"""Graphs for the operations tests (`tests/test_operations.py`): one that asks a human, one
that fails, and one served on a queue no worker listens on."""

from __future__ import annotations

import asyncio
import operator
from pathlib import Path
from typing import Annotated, TypedDict

from arqgraph.checkpoint.memory import InMemorySaver
from arqgraph.graph import END, START, StateGraph
from arqgraph.types import interrupt


class State(TypedDict, total=False):
    name: str
    log: Annotated[list, operator.add]
    release: str  # a file whose creation lets the `hold` node finish


async def hold(state: State) -> State:
    """Run until the test creates the `release` file (so it can look at a running task)."""
    for _ in range(3000):
        if Path(state["release"]).exists():
            break
        await asyncio.sleep(0.02)
    return {"log": ["released"]}


def ask_name(state: State) -> State:
    return {"name": interrupt({"question": "name?"})}


def greet(state: State) -> State:
    return {"log": [f"hello {state['name']}"]}


def explode(state: State) -> State:
    raise ValueError("the boom node exploded")


def _graph(name: str, *nodes: tuple[str, object]) -> object:
    builder = StateGraph(State)
    previous = START
    for node, fn in nodes:
        builder.add_node(node, fn)
        builder.add_edge(previous, node)
        previous = node
    builder.add_edge(previous, END)
    return builder.compile(name=name, checkpointer=InMemorySaver())


ask = _graph("ops_ask", ("ask_name", ask_name), ("greet", greet))
boom = _graph("ops_boom", ("explode", explode))
lonely = _graph("ops_lonely", ("greet", greet))
held = _graph("ops_held", ("hold", hold))
