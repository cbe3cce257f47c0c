"""Seed 000, "Async Node" (LangGraph's async node document), on arqgraph.

Every runnable part of the document, with only the imports changed (`langgraph.` -> `arqgraph.`)
and the latencies going through `standins.sleep` (scaled by ARQGRAPH_SEED_SCALE):

- §3 "Defining an Async Node": `fetch_data` awaiting an external API (`fetch_graph`).
- §4 "Minimal Working Example": `async_increment` (1 s); prints `{'value': 2}`
  (`increment_graph`).
- §5 "Parallel Async Execution": `start` -> `A`, `B` -> `join`, both API calls at once
  (`parallel_graph`, ~1 s not 2 s; the calls' start/end marks show them overlapping). §9's
  production practices ("limit concurrency, add timeouts, use retries") are the nodes' options
  here: `concurrency=`, `timeout=`, `retry_policy=`, which hold on the whole cluster.
- §6 "State Semantics": `A` and `B` write to the same list through a reducer (`operator.add`);
  the merged list is in node-name order whatever order the calls finish in.
- "Demonstration" (`graph`): the LLM call and the DB search as parallel nodes. The document
  prints (the dict on one line)

      {'query': 'LangGraph async nodes', 'llm_result': 'LLM answer for: LangGraph async nodes',
       'db_result': 'DB result for: LangGraph async nodes'}
      Elapsed: 2.016120433807373

  and so does this (about 2 s, not 4 s).

    python examples/seeds/async_node.py
    arqgraph run examples.seeds.async_node:graph --input '{"query": "LangGraph async nodes"}'
"""

import asyncio
import operator
import time
from typing import Annotated, Any, TypedDict

from arqgraph.graph import END, START, StateGraph
from arqgraph.types import RetryPolicy

try:
    from examples.seeds.standins import report, run_traced, scaled, sleep
except ModuleNotFoundError:  # run as a script: python examples/seeds/async_node.py
    from standins import report, run_traced, scaled, sleep  # type: ignore[no-redef]


# -- §3 Defining an Async Node ------------------------------------------------------------------


async def external_api_call(query: str) -> str:
    await sleep(0.5, "external_api_call")  # stand-in for the API (the document gives no latency)
    return f"data for {query}"


class FetchState(TypedDict, total=False):
    query: str
    data: str


async def fetch_data(state):
    result = await external_api_call(state["query"])
    return {"data": result}


builder = StateGraph(FetchState)
builder.add_node("fetch", fetch_data)
builder.add_edge(START, "fetch")
fetch_graph = builder.compile(name="seeds.async_node.fetch")


# -- §4 Minimal Working Example -----------------------------------------------------------------


class State(TypedDict):
    value: int


async def async_increment(state):
    await sleep(1)
    return {"value": state["value"] + 1}


builder = StateGraph(State)
builder.add_node("async_inc", async_increment)
builder.set_entry_point("async_inc")
builder.add_edge("async_inc", END)

increment_graph = builder.compile(name="seeds.async_node.increment")


# -- §5 Parallel Async Execution (+ §6 reducer merge, §9 production options) ----------------------


async def api_a() -> str:
    await sleep(1, "api_a")
    return "a"


async def api_b() -> str:
    await sleep(1, "api_b")
    return "b"


class ParallelState(TypedDict, total=False):
    a: str
    b: str
    calls: Annotated[list[str], operator.add]  # §6: concurrent updates merged by a reducer
    joined: str


async def call_api_a(state):
    return {"a": await api_a(), "calls": ["A"]}


async def call_api_b(state):
    return {"b": await api_b(), "calls": ["B"]}


def join(state):
    return {"joined": state["a"] + state["b"]}


# §9 "Limit concurrency / Add timeouts / Use retries", as node options that hold cluster-wide:
# at most 5 calls of each API in flight on all workers together, each attempt cancelled after
# 10 s (NodeTimeoutError), transient failures retried 3 times with backoff (from the queue).
API_OPTIONS: dict[str, Any] = {
    "concurrency": 5,
    "timeout": scaled(10),
    "retry_policy": RetryPolicy(max_attempts=3, initial_interval=scaled(0.5), jitter=False),
}

builder = StateGraph(ParallelState)
builder.add_node("start", lambda state: {})
builder.add_node("A", call_api_a, **API_OPTIONS)
builder.add_node("B", call_api_b, **API_OPTIONS)
builder.add_node("join", join)
builder.add_edge(START, "start")
builder.add_edge("start", "A")
builder.add_edge("start", "B")
builder.add_edge("A", "join")
builder.add_edge("B", "join")
builder.add_edge("join", END)
parallel_graph = builder.compile(name="seeds.async_node.parallel")


# -- Demonstration ------------------------------------------------------------------------------


class DemoState(TypedDict):
    query: str
    llm_result: str
    db_result: str


async def fake_llm_call(query: str):
    await sleep(2, "fake_llm_call")  # simulate network latency
    return f"LLM answer for: {query}"


async def fake_db_search(query: str):
    await sleep(2, "fake_db_search")
    return f"DB result for: {query}"


async def llm_node(state: DemoState):
    result = await fake_llm_call(state["query"])
    return {"llm_result": result}


async def db_node(state: DemoState):
    result = await fake_db_search(state["query"])
    return {"db_result": result}


builder = StateGraph(DemoState)

builder.add_node("llm", llm_node)
builder.add_node("db", db_node)

builder.set_entry_point("start")

builder.add_node("start", lambda state: state)

builder.add_edge("start", "llm")
builder.add_edge("start", "db")

builder.add_edge("llm", END)
builder.add_edge("db", END)

graph = builder.compile(name="seeds.async_node")


async def main() -> dict[str, Any]:
    """Run every part; print what the document prints, with timings. Returns the traces."""
    print("§3 Defining an Async Node")
    fetched = await run_traced(fetch_graph, {"query": "weather"})
    print(fetched.result)

    print("\n§4 Minimal Working Example")
    incremented = await run_traced(increment_graph, {"value": 1})
    print(incremented.result)
    report("async_increment", incremented.elapsed, 1)

    print("\n§5 Parallel Async Execution")
    parallel = await run_traced(parallel_graph, {})
    print(parallel.result)
    report("A and B in parallel", parallel.elapsed, 1, sequential=2)

    print("\nDemonstration")
    start_time = time.time()
    demo = await run_traced(graph, {"query": "LangGraph async nodes"})
    print(demo.result)
    print("Elapsed:", time.time() - start_time)
    report("llm and db in parallel", demo.elapsed, 2, sequential=4)
    return {"fetch": fetched, "increment": incremented, "parallel": parallel, "demo": demo}


if __name__ == "__main__":
    asyncio.run(main())
