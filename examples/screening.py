"""The candidate screening lab on arqgraph: parse (2 s), then background (3 s) and references
(2 s) in parallel, then decide. About 5 s, not the 7 s of running the checks one after another.

    python examples/screening.py                       # embedded: all in this process
    arqgraph run examples.screening:graph --input '{"name": "Bob Lee"}' --stream updates
"""

import asyncio
import time
from typing import TypedDict

from arqgraph.graph import END, START, StateGraph


class CandidateState(TypedDict, total=False):
    name: str
    parsed: bool
    background: str
    references: str
    decision: str


async def parse_resume(state: CandidateState) -> dict:
    print(f"📄 Parsing resume for {state['name']} (2s)...", flush=True)
    await asyncio.sleep(2)
    return {"parsed": True}


async def background_check(state: CandidateState) -> dict:
    print("🔍 Background check (3s)...", flush=True)
    await asyncio.sleep(3)
    return {"background": "clear"}


async def reference_check(state: CandidateState) -> dict:
    print("📞 Reference check (2s)...", flush=True)
    await asyncio.sleep(2)
    return {"references": "positive"}


async def decision(state: CandidateState) -> dict:
    print(f"📋 Final decision for {state['name']}...", flush=True)
    hired = state["background"] == "clear" and state["references"] == "positive"
    return {"decision": "HIRED" if hired else "REJECTED"}


def build_graph() -> StateGraph:
    g = StateGraph(CandidateState)
    g.add_node("parse", parse_resume)
    g.add_node("background", background_check)
    g.add_node("references", reference_check)
    g.add_node("decide", decision)
    g.add_edge(START, "parse")
    g.add_edge("parse", "background")
    g.add_edge("parse", "references")
    g.add_edge("background", "decide")
    g.add_edge("references", "decide")
    g.add_edge("decide", END)
    return g


graph = build_graph().compile(name="screening")


async def main() -> None:
    start = time.perf_counter()
    result = await graph.ainvoke({"name": "Bob Lee"})
    total = time.perf_counter() - start
    print(result)
    print(f"⏱️  Graph parallel total time: {total:.1f} s (expected about 5 s; sequential is 7 s)")


if __name__ == "__main__":
    asyncio.run(main())
