"""Graphs whose nodes never finish on their own, each stopped by one of LangGraph's timeouts: a
graph's `step_timeout`, a `Send`'s own timeout policy, a `@task`'s and an `@entrypoint`'s. Built
by library prefix ("langgraph" or "arqgraph"), so the same code builds the reference and the
candidate, embedded or served by a cluster (`tests.differential.served:GRAPHS`).

A node that hangs waits on an event nobody sets: only its timeout ends it."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any, TypedDict

IDLE = 0.05  # (the timeouts that must fire)
NEVER = 60.0  # (a node's own timeout that a Send's replaces: must not fire)


class Hello(TypedDict, total=False):
    hello: str
    x: int


def _lib(prefix: str, module: str) -> Any:
    return importlib.import_module(f"{prefix}.{module}")


async def _hang() -> None:
    await asyncio.Event().wait()


def build_step_timeout(prefix: str) -> Any:
    """Two nodes of one step: `quick` writes at once, `hangs` never ends."""
    graph = _lib(prefix, "graph")

    async def hangs(state: Hello) -> dict[str, Any]:
        await _hang()
        return {}

    async def quick(state: Hello) -> dict[str, Any]:
        return {"hello": "1"}

    g = graph.StateGraph(Hello)
    g.add_node("hangs", hangs)
    g.add_node("quick", quick)
    g.add_edge(graph.START, "hangs")
    g.add_edge(graph.START, "quick")
    return g.compile(name="timeout_step")


def build_send_timeout(prefix: str) -> Any:
    """A node with a long timeout of its own, sent with a short one."""
    graph, types = _lib(prefix, "graph"), _lib(prefix, "types")

    async def slow(state: Hello) -> dict[str, Any]:
        await _hang()
        return {}

    def route(state: Hello) -> list[Any]:
        return [types.Send("slow", state, timeout=types.TimeoutPolicy(idle_timeout=IDLE))]

    g = graph.StateGraph(Hello)
    g.add_node("slow", slow, timeout=types.TimeoutPolicy(idle_timeout=NEVER))
    g.add_conditional_edges(graph.START, route)
    return g.compile(name="timeout_send")


def build_task_timeout(prefix: str) -> Any:
    """An entrypoint awaiting a task whose timeout fires."""
    func, types = _lib(prefix, "func"), _lib(prefix, "types")

    @func.task(timeout=types.TimeoutPolicy(idle_timeout=IDLE))
    async def slow_task(x: int) -> int:
        await _hang()
        return x

    @func.entrypoint()
    async def timeout_task(x: int) -> int:
        return await slow_task(x)  # type: ignore[no-any-return]

    return timeout_task


def build_entrypoint_timeout(prefix: str) -> Any:
    """An entrypoint whose own timeout fires."""
    func, types = _lib(prefix, "func"), _lib(prefix, "types")

    @func.entrypoint(timeout=types.TimeoutPolicy(idle_timeout=IDLE))
    async def timeout_entrypoint(x: int) -> int:
        await _hang()
        return x

    return timeout_entrypoint


BUILDS = {
    "step": (build_step_timeout, {"hello": "world"}),
    "send": (build_send_timeout, {"x": 1}),
    "task": (build_task_timeout, 1),
    "entrypoint": (build_entrypoint_timeout, 1),
}
