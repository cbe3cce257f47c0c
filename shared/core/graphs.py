"""Every compiled graph of this process, by key, so that orchestrators and workers find the
subgraphs they are asked to run without importing the graph-building modules.

A subgraph's runs are recorded under `protocol.child_graph(root, key)`. Whatever process loaded
the module that compiles the subgraph (a node's graph, or one a node invokes) has it here under
that key; the key holds the graph's fingerprint, so two processes agree on what it names.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

SEPARATOR = "//"  # between a root graph's name and a subgraph's key

_compiled: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def child_graph(root: str, key: str) -> str:
    """The name a subgraph's runs are recorded under, below root graph `root`."""
    return f"{root_graph(root)}{SEPARATOR}{key}"


def root_graph(graph: str) -> str:
    """The root graph a graph name belongs to (itself for a root graph)."""
    return graph.partition(SEPARATOR)[0]


def subgraph_key(graph: str) -> str | None:
    """The subgraph key inside a child graph's name; None for a root graph."""
    _, slash, key = graph.partition(SEPARATOR)
    return key if slash else None


def graph_key(name: str, fingerprint: str) -> str:
    return f"{name}~{fingerprint}"


def remember(graph: Any) -> str:
    """Keep `graph` findable by its key (while something else keeps it alive); return the key.

    The latest graph remembered under a key wins: two builds of one graph have the same key,
    and the one a task is about to run as a subgraph is the one whose nodes should run (their
    closures may differ)."""
    key = graph_key(graph.name, graph.fingerprint)
    _compiled[key] = graph
    return key


def find_graph(graphs: Mapping[str, Any], name: str) -> Any | None:
    """The graph recorded as `name`: one of `graphs` (the root graphs a process serves), or a
    subgraph below one of them that this process compiled."""
    graph = graphs.get(name)
    if graph is not None:
        return graph
    key = subgraph_key(name)
    if key is None or root_graph(name) not in graphs:
        return None
    return _compiled.get(key)
