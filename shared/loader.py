"""Load compiled graphs from import paths like `pkg.module:graph`, as every process does."""

from __future__ import annotations

import copy
import importlib
import os
import sys
from typing import Any

from arqgraph.graph.compiled import CompiledStateGraph
from arqgraph.graph.state import StateGraph


class GraphSpecError(ValueError):
    """An import path that does not lead to a graph; the message says which part is wrong."""


def load_graphs(spec: str) -> list[CompiledStateGraph[Any, Any, Any, Any]]:
    """The graph(s) at `spec`: a compiled graph, a StateGraph (compiled here), or a list/dict.

    A graph compiled without `name=` is registered under its import path.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise GraphSpecError(f"graph spec {spec!r} must look like 'package.module:attribute'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise GraphSpecError(f"graph spec {spec!r}: cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise GraphSpecError(f"graph spec {spec!r}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    items = list(target.values()) if isinstance(target, dict) else (
        list(target) if isinstance(target, list | tuple) else [target]
    )
    graphs = []
    for item in items:
        if isinstance(item, StateGraph):
            item = item.compile()
        if not isinstance(item, CompiledStateGraph):
            raise GraphSpecError(
                f"graph spec {spec!r} is a {type(item).__name__}, not a compiled StateGraph"
            )
        if not item.explicit_name:
            item = copy.copy(item)
            item.name = spec
        graphs.append(item)
    return graphs


def load_all(specs: list[str]) -> list[CompiledStateGraph[Any, Any, Any, Any]]:
    graphs = [g for spec in specs for g in load_graphs(spec)]
    names = [g.name for g in graphs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GraphSpecError(f"two graphs share the name(s) {duplicates}; compile(name=...) them")
    return graphs
