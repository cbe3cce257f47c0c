"""Differential cases of composition: compiled graphs as nodes, and invoked inside nodes.

Registered into `tests.differential.cases.CASES` on import (cases.py imports this module last).
"""

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage

from tests.differential.api import Api
from tests.differential.cases import LogState, _compile, case


class Outer(TypedDict, total=False):
    question: str
    answer: str
    log: Annotated[list[str], operator.add]


class Inner(TypedDict, total=False):
    question: str
    notes: Annotated[list[str], operator.add]
    answer: str


def _inner_log(api: Api, name: str, steps: tuple[str, ...]) -> Any:
    """START -> each of `steps` in turn, each appending `<name>.<step>` to `log`."""
    g = api.StateGraph(LogState)
    previous = api.START
    for step in steps:
        def node(state: LogState, step: str = step) -> dict[str, Any]:
            return {"log": [f"{name}.{step}"]}
        g.add_node(step, node)
        g.add_edge(previous, step)
        previous = step
    return g.compile(name=f"diff_{name}")


@case([{"text": "x", "log": []}, {"text": "y", "log": ["pre"]}])
def build_subgraph_as_node(api: Api) -> Any:
    sub = _inner_log(api, "sub_as_node", ("one", "two"))

    def before(state: LogState) -> dict[str, Any]:
        return {"log": ["before"]}

    def after(state: LogState) -> dict[str, Any]:
        return {"log": [f"after saw {len(state['log'])}"]}

    g = api.StateGraph(LogState)
    g.add_node("before", before)
    g.add_node("sub", sub)
    g.add_node("after", after)
    g.add_edge(api.START, "before")
    g.add_edge("before", "sub")
    g.add_edge("sub", "after")
    return _compile(g, "subgraph_as_node")


@case([{"question": "why?", "log": []}],
      note="a subgraph of another schema: shared keys in, its output keys out")
def build_subgraph_other_schema(api: Api) -> Any:
    def research(state: Inner) -> dict[str, Any]:
        return {"notes": [f"read about {state['question']}"]}

    def write(state: Inner) -> dict[str, Any]:
        return {"answer": f"{len(state['notes'])} note(s) on {state['question']}"}

    sub = api.StateGraph(Inner)
    sub.add_node("research", research)
    sub.add_node("write", write)
    sub.add_edge(api.START, "research")
    sub.add_edge("research", "write")

    def done(state: Outer) -> dict[str, Any]:
        return {"log": [f"answer: {state['answer']}"]}

    g = api.StateGraph(Outer)
    g.add_node("expert", sub.compile(name="diff_expert"))
    g.add_node("done", done)
    g.add_edge(api.START, "expert")
    g.add_edge("expert", "done")
    return _compile(g, "subgraph_other_schema")


@case([{"question": "how?", "log": []}], async_only=True,
      note="a node invokes a compiled graph with an input of its own and maps its output")
def build_subgraph_invoked_in_node(api: Api) -> Any:
    def research(state: Inner) -> dict[str, Any]:
        return {"notes": ["a", "b"], "answer": f"on {state['question']}"}

    inner = api.StateGraph(Inner)
    inner.add_node("research", research)
    inner.add_edge(api.START, "research")
    sub = inner.compile(name="diff_invoked")

    async def ask(state: Outer) -> dict[str, Any]:
        out = await sub.ainvoke({"question": state["question"].upper()})
        return {"answer": out["answer"], "log": [f"notes {out['notes']}"]}

    g = api.StateGraph(Outer)
    g.add_node("ask", ask)
    g.add_edge(api.START, "ask")
    return _compile(g, "subgraph_invoked_in_node")


def _streaming_child(api: Api) -> Any:
    """A child graph of two steps that writes custom events and streams a model's tokens."""
    from tests.differential.message_cases import EchoModel

    def draft(state: Any) -> dict[str, Any]:
        api.get_stream_writer()({"drafting": len(state["messages"])})
        return {"messages": [EchoModel().invoke(state["messages"])]}

    def polish(state: Any) -> dict[str, Any]:
        return {"messages": [{"role": "ai", "content": "polished", "id": "polished"}]}

    inner = api.StateGraph(api.MessagesState)
    inner.add_node("draft", draft)
    inner.add_node("polish", polish)
    inner.add_edge(api.START, "draft")
    inner.add_edge("draft", "polish")
    return inner.compile(name="diff_streamed_child")


def _chunk(mode: str, chunk: Any) -> str:
    """What a node keeps of a chunk it streamed from its child graph."""
    if mode == "messages":
        return f"messages:{chunk[0].content}:{chunk[1]['langgraph_node']}"
    if mode == "updates":
        return "updates:" + ",".join(sorted(chunk))
    return f"{mode}:{chunk}"


@case([{"messages": [{"role": "user", "content": "hi", "id": "u"}], "log": []}],
      note="a sync node streams a child graph (updates, custom writes, tokens) as it runs")
def build_subgraph_streamed_in_node(api: Api) -> Any:
    child = _streaming_child(api)

    class State(api.MessagesState):  # type: ignore[name-defined,misc]
        log: Annotated[list[str], operator.add]

    def relay(state: Any) -> dict[str, Any]:
        seen = [_chunk(mode, chunk) for mode, chunk in child.stream(
            {"messages": state["messages"]}, stream_mode=["updates", "custom", "messages"])]
        return {"log": seen}

    g = api.StateGraph(State)
    g.add_node("relay", relay)
    g.add_edge(api.START, "relay")
    return _compile(g, "subgraph_streamed_in_node")


@case([{"messages": [{"role": "user", "content": "yo", "id": "u"}], "log": []}],
      async_only=True, note="an async node streams a child graph's values and its subgraphs")
def build_subgraph_astreamed_in_node(api: Api) -> Any:
    child = _streaming_child(api)

    class State(api.MessagesState):  # type: ignore[name-defined,misc]
        log: Annotated[list[str], operator.add]

    async def relay(state: Any) -> dict[str, Any]:
        seen = [f"{list(ns)}:{len(values['messages'])}" async for ns, values in child.astream(
            {"messages": state["messages"]}, stream_mode="values", subgraphs=True)]
        return {"log": seen}

    g = api.StateGraph(State)
    g.add_node("relay", relay)
    g.add_edge(api.START, "relay")
    return _compile(g, "subgraph_astreamed_in_node")


@case([{"text": "abc", "log": []}], async_only=True, unordered=True,
      note="a Send fan-out whose target is a subgraph: one child run per item")
def build_subgraph_fan_out(api: Api) -> Any:
    class Item(TypedDict, total=False):
        item: str
        log: Annotated[list[str], operator.add]

    async def work(state: Item) -> dict[str, Any]:
        await asyncio.sleep(0.02 * (ord("d") - ord(state["item"])))
        return {"log": [f"work:{state['item']}"]}

    inner = api.StateGraph(Item)
    inner.add_node("work", work)
    inner.add_edge(api.START, "work")

    def fan(state: LogState) -> list[Any]:
        return [api.Send("each", {"item": ch, "log": []}) for ch in state["text"]]

    def join(state: LogState) -> dict[str, Any]:
        return {"log": [f"joined {sorted(state['log'])}"]}

    g = api.StateGraph(LogState)
    g.add_node("each", inner.compile(name="diff_each"))
    g.add_node("join", join)
    g.add_conditional_edges(api.START, fan, ["each"])
    g.add_edge("each", "join")
    return _compile(g, "subgraph_fan_out")


@case([{"text": "n", "log": []}])
def build_subgraph_nested(api: Api) -> Any:
    leaf = _inner_log(api, "leaf", ("deep",))
    middle = api.StateGraph(LogState)
    middle.add_node("leaf", leaf)
    middle.add_node("mid", lambda state: {"log": ["mid"]})
    middle.add_edge(api.START, "leaf")
    middle.add_edge("leaf", "mid")
    g = api.StateGraph(LogState)
    g.add_node("middle", middle.compile(name="diff_middle"))
    g.add_node("top", lambda state: {"log": [f"top saw {state['log']}"]})
    g.add_edge(api.START, "middle")
    g.add_edge("middle", "top")
    return _compile(g, "subgraph_nested")


@case([{"text": "boom", "log": []}])
def build_subgraph_failure(api: Api) -> Any:
    def explode(state: LogState) -> dict[str, Any]:
        raise ValueError(f"inner failure on {state['text']}")

    inner = api.StateGraph(LogState)
    inner.add_node("explode", explode)
    inner.add_edge(api.START, "explode")
    g = api.StateGraph(LogState)
    g.add_node("sub", inner.compile(name="diff_failing"))
    g.add_edge(api.START, "sub")
    return _compile(g, "subgraph_failure")


@case([{"text": "x", "log": []}], async_only=True,
      note="a subgraph's events interleave with those of a node beside it, as they happen")
def build_subgraph_beside_a_slower_node(api: Api) -> Any:
    async def quick(state: LogState) -> dict[str, Any]:
        return {"log": ["inner.quick"]}

    async def slow(state: LogState) -> dict[str, Any]:
        await asyncio.sleep(0.6)  # (the node beside it ends while this one runs)
        return {"log": ["inner.slow"]}

    inner = api.StateGraph(LogState)
    inner.add_node("quick", quick)
    inner.add_node("slow", slow)
    inner.add_edge(api.START, "quick")
    inner.add_edge("quick", "slow")

    async def beside(state: LogState) -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return {"log": ["beside"]}

    g = api.StateGraph(LogState)
    g.add_node("inner", inner.compile(name="diff_interleaved"))
    g.add_node("beside", beside)
    g.add_edge(api.START, "inner")
    g.add_edge(api.START, "beside")
    return _compile(g, "subgraph_beside_a_slower_node")


@case([{"messages": [HumanMessage(content="a trip to Oslo", id="ask")]}],
      note="a supervisor and two agents as subgraphs, each handing back with Command.PARENT")
def build_subgraph_supervisor(api: Api) -> Any:
    def agent(name: str) -> Any:
        def act(state: Any) -> Any:
            said = AIMessage(content=f"{name} on {state['messages'][0].content}",
                             id=f"{name}-{len(state['messages'])}", name=name)
            return api.Command(graph=api.Command.PARENT, goto="supervisor",
                               update={"messages": [said]})

        g = api.StateGraph(api.MessagesState)
        g.add_node("act", act)
        g.add_edge(api.START, "act")
        return g.compile(name=f"diff_{name}")

    def supervisor(state: Any) -> Any:
        heard = {m.name for m in state["messages"] if isinstance(m, AIMessage)}
        return api.Command(goto=next((a for a in ("researcher", "writer") if a not in heard),
                                     api.END))

    g = api.StateGraph(api.MessagesState)
    g.add_node("supervisor", supervisor, destinations=("researcher", "writer", api.END))
    g.add_node("researcher", agent("researcher"))
    g.add_node("writer", agent("writer"))
    g.add_edge(api.START, "supervisor")
    return _compile(g, "subgraph_supervisor")
