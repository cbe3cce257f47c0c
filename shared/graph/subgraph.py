"""A compiled graph as a node of another (`builder.add_node("research", research_graph)`).

The node's run is the subgraph's: the parent's state is its input and its output is the node's
update. On a worker, invoking the subgraph makes it a child run whose nodes are jobs on the pool
(see `arqgraph.workers.subgraphs`); this wrapper only gives it the node's calling convention.
"""

from __future__ import annotations

from typing import Any


class SubgraphNode:
    """Runs `graph` with the node's input and config; its output is the node's result."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.__name__ = graph.get_name()

    @property
    def fingerprint(self) -> str:
        """The subgraph's: the parent's fingerprint changes when the subgraph does."""
        return str(self.graph.fingerprint)

    async def __call__(self, state: Any, config: dict[str, Any]) -> Any:
        return await self.graph.ainvoke(state, config)

    def __repr__(self) -> str:
        return f"SubgraphNode({self.graph.name!r})"


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
