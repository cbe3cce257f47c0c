"""Graphs of tests/test_orchestrator_crash.py, served by real orchestrator and worker processes.

Every node appends its name (a Sent task: its name and item) to `log`, a list folded with
`operator.add`, and the other keys are reduced with `operator.add` too: a superstep applied twice
shows as a repeated entry, a skipped one as a missing entry, so the final state of a run equals
the state of a fault-free run only if each step was applied exactly once.

- `fanout`: plan, then `n` Sent `work` tasks in one superstep, then `reduce`.
  Supersteps: -1 input, 0 plan, 1 the `n` work tasks, 2 reduce.
- `chain`: `CHAIN_LENGTH` nodes one after the other. Supersteps: -1 input, 0 s0, ..., 7 s7.
- `join`: split, then three branches of different lengths joined by `merge`
  (`add_edge(["a", "b3", "c"], "merge")`). Supersteps: -1 input, 0 split, 1 a b1 c, 2 b2, 3 b3,
  4 merge; from step 1 to 3 the checkpoint remembers which sources of the join have finished.

With a `gate` (a file path) in the input, the `work` tasks of `fanout` wait until that file
exists, so a test can hold a superstep open for as long as it needs to.
"""

import asyncio
import operator
import os
import time
from typing import Annotated, TypedDict

from arqgraph.graph import END, START, StateGraph
from arqgraph.types import Send

GATE_LIMIT = 60.0  # a gated task fails if its gate stays shut this long (a test went wrong)


async def wait_for_gate(gate: str) -> None:
    if not gate:
        return
    deadline = time.monotonic() + GATE_LIMIT
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} stayed shut for {GATE_LIMIT:.0f}s")
        await asyncio.sleep(0.02)


# -- fan-out of Sends, then a reduce -----------------------------------------------------------


class FanState(TypedDict, total=False):
    n: int
    gate: str
    log: Annotated[list[str], operator.add]
    results: Annotated[list[int], operator.add]
    total: Annotated[int, operator.add]


class WorkItem(TypedDict):
    i: int
    gate: str


def plan(state: FanState) -> dict:
    return {"log": ["plan"], "total": 1000}


def fan(state: FanState) -> list[Send]:
    return [Send("work", {"i": i, "gate": state.get("gate", "")}) for i in range(state["n"])]


async def work(item: WorkItem) -> dict:
    await wait_for_gate(item["gate"])
    await asyncio.sleep(0.005 * (item["i"] % 4))  # finish out of send order
    return {"log": [f"work:{item['i']}"], "results": [item["i"] ** 2]}


def reduce(state: FanState) -> dict:
    return {"log": ["reduce"], "total": sum(state["results"])}


_fan = StateGraph(FanState)
_fan.add_node("plan", plan)
_fan.add_node("work", work)
_fan.add_node("reduce", reduce)
_fan.add_edge(START, "plan")
_fan.add_conditional_edges("plan", fan, ["work"])
_fan.add_edge("work", "reduce")
_fan.add_edge("reduce", END)
fanout = _fan.compile(name="crash_fanout")


# -- a chain of supersteps ---------------------------------------------------------------------

CHAIN_LENGTH = 8


class ChainState(TypedDict, total=False):
    x: int
    log: Annotated[list[str], operator.add]
    steps: Annotated[int, operator.add]


def _link(i: int):
    def link(state: ChainState) -> dict:
        return {"x": state["x"] * 3 + i, "log": [f"s{i}"], "steps": 1}

    link.__name__ = f"s{i}"
    return link


_chain = StateGraph(ChainState)
for _i in range(CHAIN_LENGTH):
    _chain.add_node(f"s{_i}", _link(_i))
    _chain.add_edge(START if _i == 0 else f"s{_i - 1}", f"s{_i}")
_chain.add_edge(f"s{CHAIN_LENGTH - 1}", END)
chain = _chain.compile(name="crash_chain")


# -- parallel branches of different lengths and a join -------------------------------------


class JoinState(TypedDict, total=False):
    x: int
    log: Annotated[list[str], operator.add]
    parts: Annotated[list[int], operator.add]
    total: int


def _branch(name: str, factor: int):
    async def branch(state: JoinState) -> dict:
        await asyncio.sleep(0.01)
        return {"log": [name], "parts": [state["x"] * factor]}

    branch.__name__ = name
    return branch


def split(state: JoinState) -> dict:
    return {"log": ["split"], "parts": [state["x"]]}


def merge(state: JoinState) -> dict:
    return {"log": ["merge"], "total": sum(state["parts"])}


_join = StateGraph(JoinState)
_join.add_node("split", split)
for _name, _factor in (("a", 2), ("b1", 3), ("b2", 5), ("b3", 7), ("c", 11)):
    _join.add_node(_name, _branch(_name, _factor))
_join.add_node("merge", merge)
_join.add_edge(START, "split")
_join.add_edge("split", "a")
_join.add_edge("split", "b1")
_join.add_edge("split", "c")
_join.add_edge("b1", "b2")
_join.add_edge("b2", "b3")
_join.add_edge(["a", "b3", "c"], "merge")
_join.add_edge("merge", END)
join = _join.compile(name="crash_join")

GRAPHS = [fanout, chain, join]


# -- the final states, computed in plain Python ------------------------------------------------


def expected_fanout(n: int, gate: str | None = None) -> dict:
    results = [i * i for i in range(n)]  # folded in send order, whatever order they finished in
    state = {"n": n, "log": ["plan", *(f"work:{i}" for i in range(n)), "reduce"],
             "results": results, "total": 1000 + sum(results)}
    return state if gate is None else {**state, "gate": gate}


def expected_chain(x: int) -> dict:
    for i in range(CHAIN_LENGTH):
        x = x * 3 + i
    return {"x": x, "log": [f"s{i}" for i in range(CHAIN_LENGTH)], "steps": CHAIN_LENGTH}


def expected_join(x: int) -> dict:
    # Writes of one step fold in node-name order: a, b1, c; then b2, b3 in their own steps.
    parts = [x, 2 * x, 3 * x, 11 * x, 5 * x, 7 * x]
    return {"x": x, "log": ["split", "a", "b1", "c", "b2", "b3", "merge"], "parts": parts,
            "total": sum(parts)}
