"""Graphs served by the real processes of tests/test_resilience.py.

`rounds` is a fan-out / fan-in loop whose every node sleeps a little (`delay` s), so that runs
stay in flight long enough to kill processes (or Redis) under them. Every node writes through
reducers that would show a double apply: `log` (operator.add on lists) gains one entry per
node execution and `total` (operator.add on ints) sums each node's own value, so a write
applied twice, or lost, changes the final state. `expected_rounds` computes that final state in
plain Python.

`gate` fans out `width` nodes that each hold a worker slot until the test creates a Redis key:
with them a test checks, without timing anything, that the workers still run as many nodes at
once as their --concurrency allows.

Besides `shared.*` and the standard library, only `redis` is imported (for the gate).
"""

import asyncio
import operator
from typing import Annotated, TypedDict

import redis.asyncio

from arqgraph.graph import END, START, StateGraph
from arqgraph.types import Send


class RoundsState(TypedDict, total=False):
    x: int
    width: int
    rounds: int
    delay: float
    round: int
    log: Annotated[list[str], operator.add]
    total: Annotated[int, operator.add]


class Piece(TypedDict):
    x: int
    round: int
    i: int
    delay: float


async def prep(state: RoundsState) -> dict:
    await asyncio.sleep(state["delay"])
    r = state.get("round", 0) + 1
    return {"round": r, "log": [f"prep{r}"], "total": 1000 * r}


def fan(state: RoundsState) -> list[Send]:
    return [Send("work", {"x": state["x"], "round": state["round"], "i": i,
                          "delay": state["delay"]})
            for i in range(state["width"])]


async def work(piece: Piece) -> dict:
    # Later pieces finish first: writes must still fold in send order.
    await asyncio.sleep(piece["delay"] * (1 + 0.1 * (3 - piece["i"] % 4)))
    return {"log": [f"work{piece['round']}.{piece['i']}"],
            "total": piece["x"] * 10 + piece["i"] + piece["round"]}


async def join(state: RoundsState) -> dict:
    await asyncio.sleep(state["delay"])
    return {"log": [f"join{state['round']}"], "total": 1}


def again(state: RoundsState) -> str:
    return "prep" if state["round"] < state["rounds"] else END


_rounds = StateGraph(RoundsState)
_rounds.add_node("prep", prep)
_rounds.add_node("work", work)
_rounds.add_node("join", join)
_rounds.add_edge(START, "prep")
_rounds.add_conditional_edges("prep", fan, ["work"])
_rounds.add_edge("work", "join")
_rounds.add_conditional_edges("join", again, ["prep", END])
rounds = _rounds.compile(name="resilience_rounds")


def rounds_input(x: int, *, width: int = 3, rounds: int = 2, delay: float = 0.05) -> dict:
    return {"x": x, "width": width, "rounds": rounds, "delay": delay}


def expected_rounds(data: dict) -> dict:
    x, width, n = data["x"], data["width"], data["rounds"]
    log: list[str] = []
    total = 0
    for r in range(1, n + 1):
        log.append(f"prep{r}")
        total += 1000 * r
        for i in range(width):
            log.append(f"work{r}.{i}")
            total += x * 10 + i + r
        log.append(f"join{r}")
        total += 1
    return {**data, "round": n, "log": log, "total": total}


# -- nodes that hold a worker slot until the test opens the gate --------------------------------


class GateState(TypedDict, total=False):
    width: int
    url: str
    gate: str
    held: Annotated[list[int], operator.add]


def fan_gate(state: GateState) -> list[Send]:
    return [Send("hold", {"i": i, "url": state["url"], "gate": state["gate"]})
            for i in range(state["width"])]


async def hold(item: dict) -> dict:
    client = redis.asyncio.Redis.from_url(item["url"])
    try:
        while not await client.exists(item["gate"]):
            await asyncio.sleep(0.02)
    finally:
        await client.aclose()
    return {"held": [item["i"]]}


_gate = StateGraph(GateState)
_gate.add_node("hold", hold)
_gate.add_conditional_edges(START, fan_gate, ["hold"])
_gate.add_edge("hold", END)
gate = _gate.compile(name="resilience_gate")


GRAPHS = [rounds, gate]
