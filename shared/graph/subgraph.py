"""A compiled graph as a node of another (`builder.add_node("research", research_graph)`),
and how a graph finds and shows the subgraphs its nodes run.

The node's run is the subgraph's: the parent's state is its input and its output is the node's
update. On a worker, invoking the subgraph makes it a child run whose nodes are jobs on the pool
(see `arqgraph.workers.subgraphs`); this wrapper only gives it the node's calling convention.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import pydantic

from arqgraph.core.schema import ROOT
from arqgraph.types import StateSnapshot


class SubgraphNode:
    """Runs `graph` with the node's input and config; its output is the node's result."""

    streams_inside = True  # its messages stream from its own nodes, under its namespace

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.__name__ = graph.get_name()

    @property
    def fingerprint(self) -> str:
        """The subgraph's: the parent's fingerprint changes when the subgraph does."""
        return str(self.graph.fingerprint)

    async def __call__(self, state: Any, config: Mapping[str, Any]) -> Any:
        return await self.graph.ainvoke(_values(state), config)

    def __repr__(self) -> str:
        return f"SubgraphNode({self.graph.name!r})"


def _values(state: Any) -> Any:
    """The parent's state as plain values, as a subgraph reads its parent's channels: its own
    schema may be another class."""
    if isinstance(state, pydantic.BaseModel):
        return {key: getattr(state, key) for key in type(state).model_fields}
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return {field.name: getattr(state, field.name) for field in dataclasses.fields(state)}
    return state


def is_compiled_graph(node: Any) -> bool:
    """Whether `node` is a compiled graph (ours), to be run as a subgraph."""
    return hasattr(node, "spec") and hasattr(node, "fingerprint") and hasattr(node, "ainvoke")


def find_subgraph(fn: Any) -> Any | None:
    """The compiled graph a node runs: its own graph when it is one, else the first compiled
    graph its function refers to (a variable of its closure or a global it names), as
    LangGraph finds a subgraph invoked inside a node. One compiled with `checkpointer=False`
    keeps no state and is not counted."""
    if isinstance(fn, SubgraphNode):
        found = fn.graph
    else:
        code = getattr(fn, "__code__", None)
        cells = [c.cell_contents for c in getattr(fn, "__closure__", None) or ()
                 if _filled(c)]
        names = getattr(fn, "__globals__", {})
        found = next((v for v in [*cells, *(names.get(n) for n in getattr(code, "co_names", ()))]
                      if is_compiled_graph(v)), None)
    return None if found is None or found.persistence is False else found


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def graph_at(graph: Any, config: Mapping[str, Any] | None) -> Any:
    """The graph whose thread a config's `checkpoint_ns` names: a subgraph of `graph`
    (`node:task|node:task`, by node names), else `graph` itself."""
    namespace = ((config or {}).get("configurable") or {}).get("checkpoint_ns") or ""
    found = graph
    for part in filter(None, str(namespace).split("|")):
        spec = found.nodes.get(part.split(":")[0])
        found = find_subgraph(spec.fn) if spec is not None else None
        if found is None:
            return graph
    return found


def graph_in(graph: Any, ns: tuple[str, ...]) -> Any:
    """The graph whose events stream under namespace `ns` (`node:task` parts), else `graph`
    itself when a part names no node that runs a subgraph."""
    found = graph
    for part in ns:
        spec = found.nodes.get(part.split(":")[0])
        fn = spec.fn if spec is not None else None
        found = fn.graph if isinstance(fn, SubgraphNode) else find_subgraph(fn)
        if found is None:
            return graph
    return found


def subgraphs_of(graph: Any, namespace: str | None, recurse: bool) -> Iterator[tuple[str, Any]]:
    """`get_subgraphs`: (namespace, subgraph) for each node of `graph` that runs one."""
    for name, spec in graph.nodes.items():
        if namespace is not None and namespace != name and not namespace.startswith(name + "|"):
            continue
        sub = find_subgraph(spec.fn)
        if sub is None:
            continue
        if name == namespace:
            yield name, sub
            return
        if namespace is None:
            yield name, sub
        if recurse:
            inner = None if namespace is None else namespace[len(name) + 1:]
            for path, deeper in subgraphs_of(sub, inner, True):
                yield f"{name}|{path}", deeper


def shown_snapshot(graph: Any, snapshot: StateSnapshot) -> StateSnapshot:
    """A snapshot's values as `graph` shows them: in its schemas' key order, as LangGraph's;
    a one-value state's value itself. Subgraphs' states nested in its tasks are shown by
    their own graphs."""
    if any(isinstance(t.state, StateSnapshot) for t in snapshot.tasks):
        snapshot = snapshot._replace(tasks=tuple(
            t._replace(state=shown_snapshot(sub, t.state))
            if isinstance(t.state, StateSnapshot) and t.name in graph.nodes
            and (sub := find_subgraph(graph.nodes[t.name].fn)) is not None
            else t for t in snapshot.tasks))
    if not isinstance(snapshot.values, dict):
        return snapshot
    if graph.schema.kind != "root":
        return snapshot._replace(values={k: snapshot.values[k] for k in graph.schema.channels
                                         if k in snapshot.values})
    tasks = tuple(t._replace(result=t.result.get(ROOT)) if isinstance(t.result, dict) else t
                  for t in snapshot.tasks)
    return snapshot._replace(values=snapshot.values.get(ROOT), tasks=tasks)
