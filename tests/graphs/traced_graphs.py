"""The graphs tests/test_callbacks.py reports to LangChain callbacks: built through an `Api`, so
the same code builds LangGraph's reference and arqgraph's candidate (and the cluster's copy)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from tests.differential.api import Api

FLAGS: list[dict[str, bool]] = [{}, {"ask": True}, {"fail": True}]


class TracedState(TypedDict):
    text: str
    log: Annotated[list[str], operator.add]


def build_traced(api: Api, ask: bool = False, fail: bool = False) -> Any:
    def first(state: TracedState) -> dict[str, Any]:
        if fail:
            raise ValueError("no good")
        if ask:
            api.interrupt("why?")
        return {"log": [state["text"]]}

    g = api.StateGraph(TracedState)
    g.add_node("first", first)
    g.add_edge(api.START, "first")
    return g.compile(name=f"traced_{int(ask)}{int(fail)}")


class AskedState(TypedDict):
    answer: str | None
    log: Annotated[list[str], operator.add]


def build_lifecycle(api: Api) -> Any:
    """A node that asks a human, then a breakpoint after it: every lifecycle event there is
    (a resume, an interrupt raised by a node, one at a breakpoint)."""

    def ask(state: AskedState) -> dict[str, Any]:
        return {"answer": api.interrupt("why?"), "log": ["ask"]}

    def after(state: AskedState) -> dict[str, Any]:
        return {"log": ["after"]}

    g = api.StateGraph(AskedState)
    g.add_node("ask", ask)
    g.add_node("after", after)
    g.add_edge(api.START, "ask")
    g.add_edge("ask", "after")
    return g.compile(name="lifecycle", checkpointer=api.InMemorySaver(), interrupt_after=["ask"])


def build_policed(api: Api) -> Any:
    """Two nodes, one whose TracePolicy records other values than its real input and output,
    one whose processor raises (its real values are recorded)."""

    def first(state: TracedState) -> dict[str, Any]:
        return {"log": [state["text"]]}

    def second(state: TracedState) -> dict[str, Any]:
        return {"text": state["text"] + "!"}

    def broken(_: Any) -> Any:
        raise RuntimeError("processor failed")

    policy = api.TracePolicy(process_inputs=lambda v: {"seen": sorted(v)},
                             process_outputs=api.omit_payload)
    g = api.StateGraph(TracedState)
    g.add_node("first", first, trace_policy=policy)
    g.add_node("second", second, trace_policy=api.TracePolicy(process_inputs=broken))
    g.add_edge(api.START, "first")
    g.add_edge("first", "second")
    return g.compile(name="policed")
