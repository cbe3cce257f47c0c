"""Graphs for tests/test_observe.py: what the metrics, traces and logs of a cluster are checked on.

`observed`: a, then b and c in parallel, then d. b fails its first attempt and is retried (one
retry counted, two spans for b), and logs a line, which the worker's JSON logs show with its
run's context. `failing`: one node overrunning its 0.2 s timeout: the run fails with
NodeTimeoutError. `doubled`: a Functional API entrypoint calling the `double` task twice (each
call a job, counted as an attempt of its own).
"""

from __future__ import annotations

import asyncio
import logging
import operator
from typing import Annotated, Any, TypedDict

from arqgraph.func import entrypoint, task
from arqgraph.graph import END, START, StateGraph
from arqgraph.runtime import Runtime
from arqgraph.types import RetryPolicy

log = logging.getLogger("tests.observed")
LOGGED = "b logs with its run's context"


class State(TypedDict, total=False):
    log: Annotated[list, operator.add]


def a(state: State) -> dict[str, Any]:
    return {"log": ["a"]}


def b(state: State, runtime: Runtime[Any]) -> dict[str, Any]:
    log.warning(LOGGED)
    assert runtime.execution_info is not None
    if runtime.execution_info.node_attempt == 1:
        raise ConnectionError("flaky on its first attempt")
    return {"log": ["b"]}


def c(state: State) -> dict[str, Any]:
    return {"log": ["c"]}


def d(state: State) -> dict[str, Any]:
    return {"log": ["d"]}


builder = StateGraph(State)
for name, fn in {"a": a, "c": c, "d": d}.items():
    builder.add_node(name, fn)
builder.add_node("b", b, retry_policy=RetryPolicy(initial_interval=0.01, jitter=False))
for start, end in ((START, "a"), ("a", "b"), ("a", "c"), (["b", "c"], "d"), ("d", END)):
    builder.add_edge(start, end)
observed = builder.compile(name="observed")


async def slow(state: State) -> dict[str, Any]:
    await asyncio.sleep(30)
    return {"log": ["slow"]}


failing_builder = StateGraph(State)
failing_builder.add_node("slow", slow, timeout=0.2)
failing_builder.add_edge(START, "slow")
failing_builder.add_edge("slow", END)
failing = failing_builder.compile(name="failing")



@task
async def double(value: int) -> int:
    return 2 * value


@entrypoint()
async def doubled(values: list[int]) -> list[int]:
    return list(await asyncio.gather(*(double(v) for v in values)))


GRAPHS = [observed, failing, doubled]
