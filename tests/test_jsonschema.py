"""A graph's input, output and context JSON schemas are LangGraph's, for every kind of state
schema (what the platform API shows of an assistant)."""

from __future__ import annotations

import dataclasses
import importlib
import operator
from typing import Annotated, Any, NotRequired

import pydantic
import pytest
from typing_extensions import TypedDict

from tests.differential.api import REFERENCE, Api


class TDState(TypedDict):
    question: str
    answers: Annotated[list[str], operator.add]
    note: NotRequired[str]


class TDIn(TypedDict):
    question: str


class TDOut(TypedDict):
    answers: list[str]


class PState(pydantic.BaseModel):
    question: str
    score: float = 0.5
    answers: Annotated[list[str], operator.add] = []


@dataclasses.dataclass
class DState:
    question: str
    answers: Annotated[list[str], operator.add] = dataclasses.field(default_factory=list)
    maybe: int | None = None  # noqa: UP007 - the form LangGraph reads
    count: int = 3


@dataclasses.dataclass
class Context:
    user: str
    limit: int = 5


def build(api: Api, kind: str) -> Any:
    schemas: dict[str, dict[str, Any]] = {
        "typeddict": {"state_schema": TDState},
        "typeddict_io": {"state_schema": TDState, "input_schema": TDIn, "output_schema": TDOut},
        "pydantic": {"state_schema": PState},
        "dataclass": {"state_schema": DState, "context_schema": Context},
        "root": {"state_schema": Annotated[list, operator.add]},
    }
    g = api.StateGraph(**schemas[kind])
    g.add_node("n", lambda state: None)
    g.add_edge(api.START, "n")
    return g.compile()


KINDS = ["typeddict", "typeddict_io", "pydantic", "dataclass", "root"]


@pytest.mark.parametrize("kind", KINDS)
def test_json_schemas_are_langgraphs(kind: str) -> None:
    theirs, ours = build(Api(REFERENCE), kind), build(Api("arqgraph"), kind)
    assert ours.get_input_jsonschema() == theirs.get_input_jsonschema()
    assert ours.get_output_jsonschema() == theirs.get_output_jsonschema()
    assert ours.get_context_jsonschema() == theirs.get_context_jsonschema()


@pytest.mark.parametrize("kind", KINDS)
def test_input_and_output_models_are_langgraphs(kind: str) -> None:
    theirs, ours = build(Api(REFERENCE), kind), build(Api("arqgraph"), kind)
    for method in ("get_input_schema", "get_output_schema"):
        expected = getattr(theirs, method)().model_json_schema()
        assert getattr(ours, method)().model_json_schema() == expected, method


class EntryContext(TypedDict):
    model: str


def build_entrypoint(api: Api) -> Any:
    func = importlib.import_module(f"{api.prefix}.func")

    @func.entrypoint(context_schema=EntryContext)
    def graph(numbers: list[int]) -> list[str]:
        return [str(n) for n in numbers]

    return graph


def test_an_entrypoints_schemas_are_langgraphs() -> None:
    """An entrypoint describes its function's input and return annotations, and its context."""
    theirs, ours = build_entrypoint(Api(REFERENCE)), build_entrypoint(Api("arqgraph"))
    assert ours.get_input_jsonschema() == theirs.get_input_jsonschema()
    assert ours.get_output_jsonschema() == theirs.get_output_jsonschema()
    assert ours.get_context_jsonschema() == theirs.get_context_jsonschema()
    assert ours.invoke([1, 2]) == theirs.invoke([1, 2]) == ["1", "2"]
