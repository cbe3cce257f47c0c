"""Seed 002, "Lab 2.4: High-Performance Workflows with Asynchronous Execution", on arqgraph.

- Lab 2.4.1, sequential execution: the document's plain-asyncio `sequential_screening` for
  Alice Johnson, unchanged (it uses no graph): parse (2 s), background (3 s), references (2 s)
  one after the other. Prints "⏱️  Sequential Total Time: 7.0 seconds" and
  "Expected ≈ 2s + 3s + 2s = 7s". The same three checks as a chain of graph nodes (the
  document's "Sequential Flow" diagram) are `sequential_graph`: also about 7 s.
- Lab 2.4.2 (1), Graph API parallelism (`graph`): parse, then background and references as
  parallel branches, then decide. The document's `build_graph` and `run_graph` with only the
  imports changed; prints "⏱️ Graph Parallel Total Time: 5.0 seconds (Expected ~5s)": the two
  checks' "started" lines both come before either "complete" line, and the 2 s reference check
  completes before the 3 s background check.
- Lab 2.4.2 (2), the Functional API (`@entrypoint`/`@task`): not here; arqgraph's functional
  API is built separately.

As in LangGraph, `decision`'s `{"decision": "HIRED"}` is dropped: `CandidateState` has no
`decision` key (the document does not print the result, only the timing).

    python examples/seeds/screening_lab.py
    arqgraph run examples.seeds.screening_lab:graph --input '{"name": "Bob Lee"}' --stream updates
"""

import asyncio
from typing import Any, TypedDict

from arqgraph.graph import END, START, StateGraph

try:
    from examples.seeds.standins import run_traced, sleep
except ModuleNotFoundError:  # run as a script: python examples/seeds/screening_lab.py
    from standins import run_traced, sleep  # type: ignore[no-redef]


# -- Lab 2.4.1: sequential execution, plain asyncio ----------------------------------------------


async def parse_resume(name: str):
    print(f"📄 Parsing resume for {name} (2s)...")
    await sleep(2)
    print("   ✅ Resume parsed")


async def check_background(name: str):
    print(f"🔍 Background check for {name} (3s)...")
    await sleep(3)
    print("   ✅ Background complete")


async def check_references(name: str):
    print(f"📞 Reference check for {name} (2s)...")
    await sleep(2)
    print("   ✅ References complete")


async def sequential_screening(name: str):
    print(f"\n🎯 Sequential screening for {name}")
    start = asyncio.get_running_loop().time()

    await parse_resume(name)
    await check_background(name)
    await check_references(name)

    total = asyncio.get_running_loop().time() - start
    print(f"\n⏱️  Sequential Total Time: {total:.1f} seconds")
    print("Expected ≈ 2s + 3s + 2s = 7s")
    return total


# -- Lab 2.4.2 (1): Graph API parallelism --------------------------------------------------------


class CandidateState(TypedDict):
    name: str


async def parse_resume_node(state: CandidateState):
    print(f"📄 Parsing resume for {state['name']} (2s)...")
    await sleep(2, "parse")
    print("   ✅ Resume parsed")
    return {}


async def background_check(state: CandidateState):
    print("🔍 Background check (3s)...")
    await sleep(3, "background")
    print("   ✅ Background check complete")
    return {}


async def reference_check(state: CandidateState):
    print("📞 Reference check (2s)...")
    await sleep(2, "references")
    print("   ✅ References complete")
    return {}


async def decision(state: CandidateState):
    print(f"📋 Final decision for {state['name']}...")
    return {"decision": "HIRED"}


def build_graph():
    g = StateGraph(CandidateState)
    g.add_node("parse", parse_resume_node)
    g.add_node("background", background_check)
    g.add_node("references", reference_check)
    g.add_node("decide", decision)

    g.add_edge(START, "parse")
    g.add_edge("parse", "background")
    g.add_edge("parse", "references")
    g.add_edge("background", "decide")
    g.add_edge("references", "decide")
    g.add_edge("decide", END)
    return g.compile(name="seeds.screening_lab")


def build_sequential_graph():
    """The document's "Sequential Flow": Parse -> Background -> References -> Decision."""
    g = StateGraph(CandidateState)
    g.add_node("parse", parse_resume_node)
    g.add_node("background", background_check)
    g.add_node("references", reference_check)
    g.add_node("decide", decision)
    g.add_edge(START, "parse")
    g.add_edge("parse", "background")
    g.add_edge("background", "references")
    g.add_edge("references", "decide")
    g.add_edge("decide", END)
    return g.compile(name="seeds.screening_lab.sequential")


graph = build_graph()
sequential_graph = build_sequential_graph()


async def run_graph(graph=graph, name: str = "Bob Lee", label: str = "Graph Parallel"):
    start = asyncio.get_running_loop().time()
    trace = await run_traced(graph, {"name": name})
    total = asyncio.get_running_loop().time() - start
    expected = "~5s" if graph is not sequential_graph else "~7s"
    print(f"\n⏱️ {label} Total Time: {total:.1f} seconds (Expected {expected})")
    return trace


async def main() -> dict[str, Any]:
    """Sequential (plain asyncio), sequential as a graph, then the parallel graph."""
    sequential = await sequential_screening("Alice Johnson")
    print("\n🎯 Sequential Flow as a graph")
    chained = await run_graph(sequential_graph, "Alice Johnson", "Graph Sequential")
    print("\n🎯 Parallel Flow as a graph")
    parallel = await run_graph()
    print("\n✅ You save 2 seconds with parallelism.")
    return {"sequential_seconds": sequential, "sequential_graph": chained, "parallel": parallel}


if __name__ == "__main__":
    asyncio.run(main())
