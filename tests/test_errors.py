"""Exceptions cross the wire with their type, arguments and plain attributes (`ErrorInfo`), so
the producer gets the exception a node raised, fields and all, as LangGraph's in-process run
would raise it."""

from __future__ import annotations

import asyncio
import operator
import warnings
from typing import Annotated, TypedDict

import pytest

from arqgraph.core import codec
from arqgraph.errors import (
    ErrorInfo,
    GraphBubbleUp,
    GraphInterrupt,
    NodeCancelledError,
    NodeInterrupt,
    NodeTimeoutError,
    RemoteNodeError,
    UnknownInterruptError,
)
from arqgraph.graph import START, StateGraph
from arqgraph.protocol.errors import decode_error, encode_error


def over_the_wire(exc: BaseException) -> BaseException:
    info = ErrorInfo.of(exc, "the_node")
    return decode_error(codec.unpackb(codec.packb(encode_error(info)))).rebuild()


def test_a_keyword_only_constructor_is_rebuilt_with_its_fields() -> None:
    sent = UnknownInterruptError("no such interrupt", reason="not_pending",
                                 interrupt_ids=["a"], pending_ids=["b", "c"])
    got = over_the_wire(sent)
    assert type(got) is UnknownInterruptError and str(got) == "no such interrupt"
    assert got.reason == "not_pending"
    # Tuples are not plain values: what cannot cross is left as the class sets it, not guessed.
    assert not hasattr(got, "pending_ids") or got.pending_ids in ((), ("b", "c"))


def test_a_node_timeout_keeps_which_timeout_fired() -> None:
    got = over_the_wire(NodeTimeoutError("slow", 1.25, kind="idle", idle_timeout=1.0))
    assert isinstance(got, NodeTimeoutError)
    assert (got.node, got.kind, got.timeout, got.idle_timeout, got.run_timeout, got.elapsed) == (
        "slow", "idle", 1.0, 1.0, None, 1.25)
    with pytest.raises(ValueError, match="run_timeout is required"):
        NodeTimeoutError("slow", 1.0, kind="run")


def test_node_cancelled_error_names_its_node() -> None:
    got = over_the_wire(NodeCancelledError("n"))
    assert isinstance(got, NodeCancelledError) and got.node == "n"
    assert str(got) == "Node 'n' raised asyncio.CancelledError"


def test_an_unknown_class_becomes_a_remote_node_error() -> None:
    info = ErrorInfo("Gone", "not_a_loaded_module", "boom", "", "n", ("boom",), {"x": 1})
    got = info.rebuild()
    assert isinstance(got, RemoteNodeError) and got.exc_type == "not_a_loaded_module.Gone"


def test_interrupts_bubble_up_as_in_langgraph() -> None:
    assert issubclass(GraphInterrupt, GraphBubbleUp)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        raised = NodeInterrupt("ask", id="i1")
    assert any(issubclass(w.category, DeprecationWarning) for w in seen)
    assert isinstance(raised, GraphInterrupt)
    assert [(i.value, i.id) for i in raised.interrupts] == [("ask", "i1")]


def test_a_pydantic_validation_error_crosses_as_itself() -> None:
    import pydantic

    class Model(pydantic.BaseModel):
        n: int
        tags: list[str]

    try:
        Model.model_validate({"n": "x{1}", "tags": [1]})
    except pydantic.ValidationError as exc:
        sent = exc
    got = over_the_wire(sent)
    assert isinstance(got, pydantic.ValidationError)
    assert got.title == "Model" and got.error_count() == 2
    assert [(e["type"], e["loc"], e["msg"], e["input"]) for e in got.errors()] == [
        (e["type"], e["loc"], e["msg"], e["input"]) for e in sent.errors()]
    assert str(got).splitlines()[:3] == str(sent).splitlines()[:3]


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


@pytest.mark.parametrize("style", ["async", "sync"])
def test_a_node_raising_cancelled_error_fails_its_run_as_in_langgraph(style: str) -> None:
    """A node's own CancelledError is a failure of the node (LangGraph's NodeCancelledError),
    not the cancel of its run: the run used to be left waiting for ever."""

    def sync_node(state: State) -> State:
        raise asyncio.CancelledError()

    async def async_node(state: State) -> State:
        raise asyncio.CancelledError()

    builder = StateGraph(State)
    builder.add_node("n", async_node if style == "async" else sync_node)
    builder.add_edge(START, "n")
    with pytest.raises(NodeCancelledError, match="Node 'n' raised asyncio.CancelledError"):
        builder.compile().invoke({"log": []})
