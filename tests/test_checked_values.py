"""Values checked where they are made, on the embedded default (on processes: test_poison.py).

A task call's result that msgpack cannot encode fails the call under its retry policy, naming
the task, the key and the type, instead of leaving its run "running" for ever; a state given as
an instance of a class defined inside a function runs as LangGraph runs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import operator
from typing import Annotated, Any, TypedDict

import pydantic
import pytest

from arqgraph.errors import InvalidInputError, SerializationError
from tests.graphs import fault_graphs

LIMIT = 20.0


async def test_an_unserializable_task_result_fails_the_call_through_its_retry_policy() -> None:
    fault_graphs.JUNK_TRIES.clear()
    with pytest.raises(SerializationError) as failed:
        await asyncio.wait_for(fault_graphs.junk_task.ainvoke("k"), LIMIT)
    assert str(failed.value) == ("the result of task 'make_junk': key 'k': cannot serialize a "
                                 "value of type builtins.object")
    assert fault_graphs.JUNK_TRIES == ["k", "k"]  # retried under its policy, then failed


def local_state_runs(prefix: str) -> list[Any]:
    """A graph whose state classes are defined here, invoked with instances of them."""
    graph_api = importlib.import_module(f"{prefix}.graph")

    @dataclasses.dataclass
    class State:
        name: str
        seen: Annotated[list[str], operator.add] = dataclasses.field(default_factory=list)

    class Model(pydantic.BaseModel):
        name: str
        seen: Annotated[list[str], operator.add] = []

    results = []
    for schema in (State, Model):
        builder = graph_api.StateGraph(schema)
        builder.add_node("greet", lambda s: {"seen": [f"hi {s.name}"]})
        builder.add_edge(graph_api.START, "greet")
        builder.add_edge("greet", graph_api.END)
        results.append(builder.compile().invoke(schema(name="Ada", seen=["x"])))
    return results


def test_a_state_class_defined_inside_a_function_runs_as_in_langgraph() -> None:
    assert local_state_runs("arqgraph") == local_state_runs("langgraph")


class XState(TypedDict, total=False):
    x: Any


def one_node_graph() -> Any:
    from arqgraph.graph import END, START, StateGraph

    builder = StateGraph(XState)
    builder.add_node("n", lambda s: {})
    builder.add_edge(START, "n")
    builder.add_edge("n", END)
    return builder.compile()


@pytest.mark.parametrize("limit", ["abc", -1, 0, True, [3]])
def test_a_bad_recursion_limit_is_refused_at_submit_naming_it(limit: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"config\['recursion_limit'\] must be a number"):
        one_node_graph().invoke({"x": 1}, {"recursion_limit": limit})


def test_input_nested_deeper_than_msgpack_allows_is_refused_naming_key_and_limit() -> None:
    deep: Any = 1
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(InvalidInputError, match="input key 'x': nested more than 511 levels"):
        one_node_graph().invoke({"x": deep})


def broken_reducer(current: list[int], update: list[int]) -> list[int]:
    raise ValueError(f"cannot fold {update!r}")


async def test_a_raising_reducer_fails_its_run_at_once_with_its_traceback() -> None:
    """As LangGraph raises it, within the run's first fold (no retry, no waiting)."""
    import traceback

    def build(prefix: str) -> Any:
        graph_api = importlib.import_module(f"{prefix}.graph")

        class State(TypedDict, total=False):
            seen: Annotated[list[int], broken_reducer]

        builder = graph_api.StateGraph(State)
        builder.add_node("add", lambda state: {"seen": [1]})
        builder.add_edge(graph_api.START, "add")
        builder.add_edge("add", graph_api.END)
        return builder.compile()

    with pytest.raises(ValueError, match=r"cannot fold \[1\]") as theirs:
        await build("langgraph").ainvoke({})
    with pytest.raises(ValueError, match=r"cannot fold \[1\]") as ours:
        await asyncio.wait_for(build("arqgraph").ainvoke({}), LIMIT)
    assert type(ours.value) is type(theirs.value)
    assert "in broken_reducer" in "".join(traceback.format_exception(ours.value))
