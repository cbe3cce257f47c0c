"""A LangGraph program ported to arqgraph, typed as a user writes it: `scripts/typecheck` runs
`mypy --strict` on it, so the public API stays usable from strictly typed code (no untyped
decorators, no names mypy does not see exported, no implicit Any to annotate around). It is
checked, not run; `assert_type` lines fail the check if a name resolved to Any."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict, assert_type

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool

from arqgraph.checkpoint.memory import InMemorySaver
from arqgraph.client import Client, RunHandle, SyncClient
from arqgraph.config import get_stream_writer
from arqgraph.func import Entrypoint, entrypoint, task
from arqgraph.graph import END, START, CompiledStateGraph, MessagesState, StateGraph
from arqgraph.prebuilt import ToolNode, tools_condition
from arqgraph.types import Command, RetryPolicy, Send, StateSnapshot, interrupt


class State(TypedDict):
    topic: str
    jokes: Annotated[list[str], operator.add]
    approved: bool


def plan(state: State) -> dict[str, Any]:
    get_stream_writer()({"planning": state["topic"]})
    return {"jokes": []}


def fan_out(state: State) -> list[Send]:
    return [Send("write", {"topic": f"{state['topic']} {i}"}) for i in range(3)]


async def write(state: State) -> dict[str, list[str]]:
    return {"jokes": [f"a joke about {state['topic']}"]}


def review(state: State) -> Command[Literal["__end__", "plan"]]:
    answer: Any = interrupt({"jokes": state["jokes"]})
    if answer == "again":
        return Command(goto="plan")
    return Command(update={"approved": True}, goto=END)


builder = StateGraph(State)
builder.add_node("plan", plan)
builder.add_node("write", write, retry_policy=RetryPolicy(max_attempts=3))
builder.add_node("review", review)
builder.add_edge(START, "plan")
builder.add_conditional_edges("plan", fan_out, ["write"])
builder.add_edge("write", "review")
graph = builder.compile(checkpointer=InMemorySaver(), name="jokes")
assert_type(graph, CompiledStateGraph[State, None, State, State])

config: RunnableConfig = {"configurable": {"thread_id": "1"}}


def run_embedded() -> None:
    for chunk in graph.stream({"topic": "cats"}, config, stream_mode=["updates", "custom"]):
        print(chunk)
    graph.invoke(Command(resume="ok"), config)
    snapshot = graph.get_state(config)
    assert_type(snapshot, StateSnapshot)
    print(snapshot.values, snapshot.next)


@task
async def shout(text: str) -> str:
    return text.upper()


@task(retry_policy=RetryPolicy(max_attempts=2))
def count(text: str) -> int:
    return len(text)


@entrypoint(checkpointer=InMemorySaver())
async def workflow(text: str) -> dict[str, Any]:
    loud = await shout(text)
    size = await count(text)  # (awaited: `.result()` is for sync entrypoints)
    assert_type(loud, str)  # a task's call is typed by its function
    assert_type(size, int)
    return {"loud": loud, "size": size}


assert_type(workflow, Entrypoint)


def run_functional() -> None:
    print(workflow.invoke("hi", {"configurable": {"thread_id": "f1"}}))


@tool
def lookup(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def agent_node(state: MessagesState) -> dict[str, list[AnyMessage]]:
    call = {"name": "lookup", "args": {"city": "Paris"}, "id": "1"}
    return {"messages": [AIMessage(content="", tool_calls=[call])]}


agent_builder = StateGraph(MessagesState)
agent_builder.add_node("agent", agent_node)
agent_builder.add_node("tools", ToolNode([lookup]))
agent_builder.add_edge(START, "agent")
agent_builder.add_conditional_edges("agent", tools_condition)
agent_builder.add_edge("tools", END)
agent = agent_builder.compile()


async def run_on_a_cluster(url: str) -> None:
    client = await Client.connect(url)
    try:
        run = await client.submit("jokes", {"topic": "dogs"}, {"recursion_limit": 50})
        assert_type(run, RunHandle)
        async for part in run.stream(["updates", "custom"]):
            print(part)
        print(await run.result(), await run.status())
    finally:
        await client.close()
    with SyncClient(url) as sync:
        print(sync.submit("jokes", {"topic": "owls"}).result())
    print(agent.invoke({"messages": [HumanMessage(content="weather?")]}))
