"""LangGraph's module map under `arqgraph`: a program ports by changing its import prefix.

For each public module of langgraph 1.2.22 that a program imports (LangGraph is a test-only
dependency), every public name must exist under the same module path in arqgraph, and be
compatible: a function or class accepts every parameter LangGraph's accepts (by name, or through
`**kwargs`) and requires none that LangGraph's does not; a class has LangGraph's public methods,
each compatible in turn; a constant has LangGraph's value. The names left out are listed, each
with its reason, in `module_map_gaps.toml` beside this file; a listed name that has since come
to exist and fit fails the test too, so the list stays true.
"""

from __future__ import annotations

import importlib
import inspect
import tomllib
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import langgraph
import pytest

MODULES = [
    "graph", "graph.message", "types", "func", "constants", "errors", "config", "runtime",
    "channels", "managed", "checkpoint.base", "checkpoint.memory", "store.base", "store.memory",
    "cache.base", "cache.memory", "prebuilt", "prebuilt.tool_node",
    "prebuilt.chat_agent_executor", "prebuilt.tool_validator", "prebuilt.interrupt", "stream",
    "stream.transformers", "callbacks",
]
GAPS = tomllib.loads((Path(__file__).with_name("module_map_gaps.toml")).read_text())


def public_names(module: ModuleType) -> list[str]:
    """`__all__`, or else the classes and functions the module defines and its constants."""
    if hasattr(module, "__all__"):
        return sorted(module.__all__)
    names = []
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        defined_here = getattr(value, "__module__", None) == module.__name__
        if (inspect.isclass(value) or inspect.isfunction(value)) and defined_here:
            names.append(name)
        elif name.isupper() and isinstance(value, str | int):
            names.append(name)
    return sorted(names)


def signature(obj: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def signature_problems(theirs: Any, ours: Any) -> list[str]:
    """What a call that works on LangGraph's `theirs` could find wrong with `ours`."""
    want, have = signature(theirs), signature(ours)
    if want is None or have is None:
        return []
    kinds = inspect.Parameter
    has_kwargs = any(p.kind is kinds.VAR_KEYWORD for p in have.parameters.values())
    has_args = any(p.kind is kinds.VAR_POSITIONAL for p in have.parameters.values())
    problems = []
    for name, param in want.parameters.items():
        if param.kind in (kinds.VAR_KEYWORD, kinds.VAR_POSITIONAL):
            continue
        mine = have.parameters.get(name)
        if mine is None:
            positional = param.kind is kinds.POSITIONAL_ONLY
            if not (has_kwargs and not positional) and not (positional and has_args):
                problems.append(f"no parameter {name!r}")
        elif param.kind is kinds.KEYWORD_ONLY and mine.kind is kinds.POSITIONAL_ONLY:
            problems.append(f"{name!r} is positional-only")
    for name, mine in have.parameters.items():
        required = mine.default is inspect.Parameter.empty and mine.kind not in (
            kinds.VAR_KEYWORD, kinds.VAR_POSITIONAL)
        if required and name not in want.parameters and name not in ("self", "cls"):
            problems.append(f"requires {name!r}, which LangGraph does not")
    return problems


def public_methods(cls: type) -> dict[str, Any]:
    """Methods a program calls on LangGraph's class: defined in LangGraph's own code."""
    found = {}
    for klass in cls.__mro__:
        if not klass.__module__.startswith("langgraph"):
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_") and callable(value) and name not in found:
                found[name] = value
    return found


def problems_of(theirs: Any, ours: Any) -> list[str]:
    if inspect.isclass(theirs):
        if not callable(ours):
            return [f"is {type(ours).__name__}, not a class"]
        problems = signature_problems(theirs, ours)
        if inspect.isclass(ours):
            for name in public_methods(theirs):
                mine = inspect.getattr_static(ours, name, None)
                if mine is None:
                    problems.append(f"no method {name!r}")
                else:
                    problems += [f"{name}: {p}" for p in signature_problems(
                        getattr(theirs, name), getattr(ours, name))]
        return problems
    if inspect.isfunction(theirs):
        return signature_problems(theirs, ours) if callable(ours) else ["is not callable"]
    if isinstance(theirs, str | int) and not isinstance(theirs, bool):
        return [] if ours == theirs else [f"is {ours!r}, LangGraph's is {theirs!r}"]
    if typing.get_origin(theirs) is typing.Literal:
        return [] if set(typing.get_args(ours)) >= set(typing.get_args(theirs)) else [
            f"allows {typing.get_args(ours)}, LangGraph's {typing.get_args(theirs)}"]
    return []


def test_langgraph_is_the_mapped_version() -> None:
    assert importlib.metadata.version("langgraph") == "1.2.22"
    assert langgraph  # imported for its version


@pytest.mark.parametrize("module", MODULES)
def test_every_public_name_has_a_compatible_twin(module: str) -> None:
    theirs = importlib.import_module(f"langgraph.{module}")
    gaps = GAPS.get(module, {})
    try:
        ours: ModuleType | None = importlib.import_module(f"arqgraph.{module}")
    except ImportError:
        ours = None
    wrong, listed_but_fine = [], []
    for name in public_names(theirs):
        if ours is None or not hasattr(ours, name):
            problems = ["missing"]
        else:
            problems = problems_of(getattr(theirs, name), getattr(ours, name))
        if problems and name not in gaps and "*" not in gaps:
            wrong.append(f"arqgraph.{module}.{name}: {'; '.join(problems)}")
        if not problems and name in gaps:
            listed_but_fine.append(f"arqgraph.{module}.{name}")
    assert wrong == [], "\n".join(wrong)
    assert listed_but_fine == [], "listed in module_map_gaps.toml but present and compatible"


def test_every_gap_names_a_public_name_and_says_why() -> None:
    for module, names in GAPS.items():
        assert module in MODULES, module
        known = set(public_names(importlib.import_module(f"langgraph.{module}"))) | {"*"}
        for name, reason in names.items():
            assert name in known, f"{module}.{name} is not a public name of LangGraph's"
            assert isinstance(reason, str) and len(reason) > 20, f"{module}.{name}: say why"
