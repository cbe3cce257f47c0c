"""LLM call and DB search as parallel async nodes: about 2 s, not 4 s.

    python examples/llm_db.py
    arqgraph run examples.llm_db:graph --input '{"query": "LangGraph async nodes"}'
"""

import asyncio
import time
from typing import TypedDict

from arqgraph.graph import END, StateGraph


class State(TypedDict, total=False):
    query: str
    llm_result: str
    db_result: str


async def fake_llm_call(query: str) -> str:
    await asyncio.sleep(2)  # simulate network latency
    return f"LLM answer for: {query}"


async def fake_db_search(query: str) -> str:
    await asyncio.sleep(2)
    return f"DB result for: {query}"


async def llm_node(state: State) -> dict:
    return {"llm_result": await fake_llm_call(state["query"])}


async def db_node(state: State) -> dict:
    return {"db_result": await fake_db_search(state["query"])}


builder = StateGraph(State)
builder.add_node("llm", llm_node)
builder.add_node("db", db_node)
builder.set_entry_point("start")
builder.add_node("start", lambda state: state)
builder.add_edge("start", "llm")
builder.add_edge("start", "db")
builder.add_edge("llm", END)
builder.add_edge("db", END)
graph = builder.compile(name="llm_db")


async def main() -> None:
    start = time.perf_counter()
    result = await graph.ainvoke({"query": "LangGraph async nodes"})
    print(result)
    print(f"Elapsed: {time.perf_counter() - start:.2f} s (expected about 2 s; sequential is 4 s)")


if __name__ == "__main__":
    asyncio.run(main())
