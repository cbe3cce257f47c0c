"""The benchmark graphs, built once for arqgraph and once for in-process LangGraph.

Each builder takes a `Kit` (the StateGraph class, START, END and Send of one runtime), so both
runtimes run the very same node functions and the very same structure. The orchestrator and
worker processes of the benchmark load `bench.graphs:GRAPHS` (plus the screening example).

Sizes that vary between `--quick` and a full run (how many Sends, how long each sleeps, how
much CPU each burns, the size of the state) are inputs, not structure, so one registered graph
serves every size.
"""

from __future__ import annotations

import asyncio
import operator
import os
import time
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from examples import screening

CHAIN_LENGTH = 200


@dataclass(frozen=True)
class Kit:
    """The graph-building names of one runtime."""

    StateGraph: Any
    START: str
    END: str
    Send: Any


def arqgraph_kit() -> Kit:
    from arqgraph.graph import END, START, StateGraph
    from arqgraph.types import Send

    return Kit(StateGraph, START, END, Send)


def langgraph_kit() -> Kit:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    return Kit(StateGraph, START, END, Send)


# -- chain: 200 trivial async nodes, each stamping the wall clock ------------------------------


class ChainState(TypedDict, total=False):
    ts: Annotated[list[float], operator.add]


async def stamp(state: ChainState) -> dict[str, Any]:
    return {"ts": [time.time()]}


def build_chain(kit: Kit, length: int = CHAIN_LENGTH) -> Any:
    g = kit.StateGraph(ChainState)
    names = [f"n{i:03d}" for i in range(length)]
    for name in names:
        g.add_node(name, stamp)
    g.add_edge(kit.START, names[0])
    for a, b in zip(names, names[1:], strict=False):
        g.add_edge(a, b)
    g.add_edge(names[-1], kit.END)
    return g.compile(name="bench_chain")


def superstep_gaps(ts: list[float]) -> list[float]:
    """Seconds between consecutive nodes of a chain: the time of one superstep."""
    return [b - a for a, b in zip(ts, ts[1:], strict=False)]


# -- fan-out: Send N tasks, reduce them -------------------------------------------------------


class FanState(TypedDict, total=False):
    n: int
    sleep: float
    cpu_ms: float
    blob: str
    total: Annotated[int, operator.add]
    done: bool


class Item(TypedDict):
    i: int
    sleep: float
    cpu_ms: float


async def plan(state: FanState) -> dict[str, Any]:
    return {}


async def work(item: Item) -> dict[str, Any]:
    if item["sleep"]:
        await asyncio.sleep(item["sleep"])
    return {"total": 1}


def burn(item: Item) -> dict[str, Any]:
    """A sync node that spends `cpu_ms` of pure-Python CPU (holding the GIL)."""
    deadline = time.thread_time() + item["cpu_ms"] / 1000
    x = 0
    while time.thread_time() < deadline:
        for _ in range(200):
            x += 1
    return {"total": 1}


async def reduce(state: FanState) -> dict[str, Any]:
    return {"done": True}


def _build_fanout(kit: Kit, worker: Any, name: str) -> Any:
    def fan(state: FanState) -> list[Any]:
        arg = {"sleep": state.get("sleep", 0.0), "cpu_ms": state.get("cpu_ms", 0.0)}
        return [kit.Send("work", {"i": i, **arg}) for i in range(state["n"])]

    g = kit.StateGraph(FanState)
    g.add_node("plan", plan)
    g.add_node("work", worker)
    g.add_node("reduce", reduce)
    g.add_edge(kit.START, "plan")
    g.add_conditional_edges("plan", fan, ["work"])
    g.add_edge("work", "reduce")
    g.add_edge("reduce", kit.END)
    return g.compile(name=name)


def build_fanout(kit: Kit) -> Any:
    """plan -> N x Send(work) -> reduce; work awaits `sleep` seconds (0: trivial)."""
    return _build_fanout(kit, work, "bench_fanout")


def build_fanout_cpu(kit: Kit) -> Any:
    """plan -> N x Send(burn) -> reduce; burn is a sync node spending `cpu_ms` of CPU."""
    return _build_fanout(kit, burn, "bench_fanout_cpu")


def fanout_input(n: int, *, sleep: float = 0.0, cpu_ms: float = 0.0, blob: int = 0) -> dict[str, Any]:
    return {"n": n, "sleep": sleep, "cpu_ms": cpu_ms, "blob": "x" * blob, "total": 0}


# -- three: a small graph, many runs ----------------------------------------------------------


class ThreeState(TypedDict, total=False):
    x: int


async def add_one(state: ThreeState) -> dict[str, Any]:
    return {"x": state.get("x", 0) + 1}


def build_three(kit: Kit) -> Any:
    g = kit.StateGraph(ThreeState)
    for name in ("a", "b", "c"):
        g.add_node(name, add_one)
    g.add_edge(kit.START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", kit.END)
    return g.compile(name="bench_three")


# -- one node that waits: for many runs in flight at once -------------------------------------


class HoldState(TypedDict, total=False):
    release: str
    out: int


_gates: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[None]] = {}
_watchers: set[asyncio.Task[None]] = set()


async def hold(state: HoldState) -> dict[str, Any]:
    """Waits until the file `release` exists (the bench and its workers share one machine): the
    bench holds every run in flight at once, then lets them all go. One watcher per process
    looks for the file, however many nodes wait for it."""
    loop, path = asyncio.get_running_loop(), state["release"]
    gate = _gates.get((loop, path))
    if gate is None:
        gate = _gates[loop, path] = loop.create_future()

        async def watch() -> None:
            while not os.path.exists(path):
                await asyncio.sleep(0.02)
            gate.set_result(None)

        watcher = loop.create_task(watch())
        _watchers.add(watcher)
        watcher.add_done_callback(_watchers.discard)
    await asyncio.shield(gate)
    return {"out": 1}


def build_hold(kit: Kit) -> Any:
    g = kit.StateGraph(HoldState)
    g.add_node("hold", hold)
    g.add_edge(kit.START, "hold")
    g.add_edge("hold", kit.END)
    return g.compile(name="bench_hold")


# -- the screening example (examples/screening.py), for LangGraph -----------------------------


def build_screening(kit: Kit) -> Any:
    """The example's graph from its own node functions (they print; callers may silence them)."""
    g = kit.StateGraph(screening.CandidateState)
    g.add_node("parse", screening.parse_resume)
    g.add_node("background", screening.background_check)
    g.add_node("references", screening.reference_check)
    g.add_node("decide", screening.decision)
    g.add_edge(kit.START, "parse")
    g.add_edge("parse", "background")
    g.add_edge("parse", "references")
    g.add_edge("background", "decide")
    g.add_edge("references", "decide")
    g.add_edge("decide", kit.END)
    return g.compile(name="screening")


BUILDERS = {
    "bench_chain": build_chain,
    "bench_fanout": build_fanout,
    "bench_fanout_cpu": build_fanout_cpu,
    "bench_three": build_three,
    "bench_hold": build_hold,
    "screening": build_screening,
}


def build_all(kit: Kit) -> dict[str, Any]:
    return {name: build(kit) for name, build in BUILDERS.items()}


_ARQGRAPH = arqgraph_kit()
GRAPHS = [build(_ARQGRAPH) for name, build in BUILDERS.items() if name != "screening"]
"""What the benchmark's orchestrator and workers serve (with `examples.screening:graph`)."""
SPECS = ("bench.graphs:GRAPHS", "examples.screening:graph")
