"""Agents as subgraphs: a researcher fans out searches, then hands off to a writer.

    python examples/agents.py                        # embedded
    arqgraph up examples.agents:graph --workers 3 &   # or a cluster, then:
    python examples/agents.py --cluster redis://127.0.0.1:6379/0

Each agent is a compiled graph added as a node of the team graph. On a cluster each agent's run
is a child run whose nodes are jobs on the pool like any others: the researcher's three searches
(0.5 s each) run at once, on whichever workers are free. The researcher ends with
`Command(graph=Command.PARENT, goto="writer")`, the handoff LangGraph's multi-agent apps use.
`stream(subgraphs=True)` shows every agent's steps under its namespace.
"""

import asyncio
import operator
import sys
import time
from typing import Annotated, Any, TypedDict

from arqgraph.graph import END, START, StateGraph
from arqgraph.types import Command, Send


class Team(TypedDict, total=False):
    topic: str
    notes: Annotated[list[str], operator.add]
    draft: str


async def search(arg: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0.5)  # a search API
    return {"notes": [f"{arg['source']} on {arg['topic']}"]}


def plan(state: Team) -> list[Send]:
    return [Send("search", {"topic": state["topic"], "source": source})
            for source in ("papers", "news", "forums")]


def hand_off(state: Team) -> Command:
    return Command(graph=Command.PARENT, goto="writer",  # the team gets the notes
                   update={"notes": state["notes"]})


researcher = StateGraph(Team)
researcher.add_node("search", search)
researcher.add_node("hand_off", hand_off)
researcher.add_conditional_edges(START, plan, ["search"])
researcher.add_edge("search", "hand_off")


async def write(state: Team) -> dict[str, Any]:
    await asyncio.sleep(0.2)  # a model call
    return {"draft": f"{state['topic']}: " + "; ".join(sorted(state["notes"]))}


writer = StateGraph(Team)
writer.add_node("write", write)
writer.add_edge(START, "write")

team = StateGraph(Team)
team.add_node("researcher", researcher.compile(name="researcher"))
team.add_node("writer", writer.compile(name="writer"))
team.add_edge(START, "researcher")
team.add_edge("writer", END)
graph = team.compile(name="agents")


async def main(cluster: str | None) -> None:
    runnable = graph.with_cluster(cluster) if cluster else graph
    started = time.perf_counter()
    async for namespace, update in runnable.astream({"topic": "async graphs"}, subgraphs=True):
        where = " / ".join(part.split(":")[0] for part in namespace) or "team"
        print(f"{time.perf_counter() - started:4.1f}s  {where:20} {update}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--cluster" else None))
