"""A compiled graph's picture: `graph.get_graph().draw_mermaid()`, as LangGraph draws it.

LangGraph finds the edges by a dry run of its loop over empty state: every node runs, each
conditional edge writes to every target it declares (a path map, a `Literal` return
annotation, a node's `Command[Literal[...]]` or `destinations=`), and each node the next step
would run is drawn with an edge from the nodes whose writes triggered it. `edges` repeats that
run over the graph's structure, with the same rules for what it cannot see (a conditional edge
that declares no targets draws none; nodes left without an edge out go to END).

With `xray`, each node that runs a graph is replaced by that graph's own drawing, its node
ids prefixed with the node's name (`agent:tools`), as LangGraph draws it.

With `langchain-core` installed (the `langchain` extra), `get_graph` returns LangChain's
`Graph`, the class LangGraph returns, with all its drawings (mermaid, PNG, ASCII, JSON);
without it, a `DrawableGraph` of the same nodes and edges draws mermaid and JSON.
"""

from __future__ import annotations

import typing
from collections import defaultdict
from typing import TYPE_CHECKING, Any, NamedTuple

from arqgraph.constants import END, START
from arqgraph.graph.drawable import DrawableGraph, NodeKind, with_kinds

if TYPE_CHECKING:
    from arqgraph.graph.compiled import CompiledStateGraph

LIMIT = 250  # steps of the dry run, as LangGraph's
# How LangGraph's JSON drawing names what runs a node: the ids of its own classes. Clients of
# a LangGraph deployment read these from the platform API's graph endpoint, so a node is
# named as LangGraph names the same node. LangChain runnables keep their own ids.
FUNCTION_ID = ("langgraph", "_internal", "_runnable", "RunnableCallable")
GRAPH_ID = ("langgraph", "graph", "state", "CompiledStateGraph")


class Edge(NamedTuple):
    source: str
    target: str
    conditional: bool
    label: str | None


Trigger = tuple[str, ...]  # ("to", node) or ("join", target, *sources)


def _declared(graph: CompiledStateGraph[Any, Any, Any, Any], node: str
              ) -> set[tuple[Trigger, bool, str | None]]:
    """What `node` writes in the dry run: (trigger, conditional, label) for each target."""
    writes: set[tuple[Trigger, bool, str | None]] = set()
    for source, target in graph.builder.edges:
        if source == node:
            writes.add((("to", target), False, None))
    for sources, target in graph.builder.joins:
        if node in sources:
            writes.add((("join", target, *sources), False, None))
    for branch in graph.branches.get(node, []):
        if branch.path_map is not None:
            for key, target in branch.path_map.items():
                writes.add((("to", target), True, None if key == target else str(key)))
        else:
            writes |= {(("to", t), True, None) for t in _literal_targets(branch.path)}
    spec = graph.nodes.get(node)
    if spec is not None:
        for target, label in spec.ends().items():
            writes.add((("to", target), True, label))
    return writes


def _literal_targets(fn: Any) -> tuple[str, ...]:
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:
        return ()
    if typing.get_origin(hint) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(hint))
    return ()


def edges(graph: CompiledStateGraph[Any, Any, Any, Any]) -> list[Edge]:
    """The graph's edges as LangGraph's dry run finds them (see the module's docstring)."""
    found: set[Edge] = set()
    sources: dict[str, set[tuple[Trigger, bool, str | None]]] = {}
    joined: dict[tuple[str, ...], set[str]] = defaultdict(set)
    tasks = {START}
    held: dict[str, list[Trigger]] = defaultdict(list)  # deferred nodes, waiting for the end
    step_sources: dict[str, set[tuple[Trigger, bool, str | None]]] = {}
    for _ in range(LIMIT + 1):  # (LangGraph runs steps -1 to LIMIT - 1)
        if not tasks:
            break
        step_sources = {task: _declared(graph, task) for task in sorted(tasks)}
        sources.update(step_sources)
        by_trigger: dict[Trigger, set[tuple[str, bool, str | None]]] = defaultdict(set)
        for src, writes in sources.items():
            for trigger, cond, label in writes:
                by_trigger[trigger].add((src, cond, label))
        nxt: dict[str, list[Trigger]] = defaultdict(list)
        for task, writes in step_sources.items():
            for trigger, cond, label in writes:
                if trigger[0] == "to":
                    if trigger[1] != END:
                        nxt[trigger[1]].append(trigger)
                    elif cond:  # (a plain edge to END is drawn as the end of a terminus)
                        found.add(Edge(task, END, cond, label))
                else:
                    waiting = joined[trigger]
                    waiting.add(task)
                    if waiting >= set(trigger[2:]) and trigger[1] in graph.nodes:
                        waiting.clear()
                        nxt[trigger[1]].append(trigger)
        nxt = _deferring(graph, nxt, held)
        for node, triggers in sorted(nxt.items()):
            added = False
            for trigger in set(triggers):
                for src, cond, label in sorted(by_trigger[trigger],
                                               key=lambda s: (s[0], s[1], s[2] or "")):
                    found.add(Edge(src, node, cond, label))
                    if (trigger, cond, label) in step_sources.get(src, set()):
                        added = True
                    else:
                        sources[src].discard((trigger, cond, label))
            if not added:
                for src in step_sources:
                    found.add(Edge(src, node, True, None))
        tasks = set(nxt) & set(graph.nodes)
    result = sorted(found, key=lambda e: (e.source, e.target, e.conditional, e.label or ""))
    termini = {e.target for e in found if e.target != END} - {e.source for e in found}
    if termini:
        result += [Edge(src, END, False, None) for src in sorted(termini)]
    elif len(step_sources) == 1 and not any(e.target == END for e in found):
        result += [Edge(src, END, True, None) for src in sorted(step_sources)]
    return result


def _deferring(graph: CompiledStateGraph[Any, Any, Any, Any], nxt: dict[str, list[Trigger]],
               held: dict[str, list[Trigger]]) -> dict[str, list[Trigger]]:
    """The nodes the next step runs: a deferred node (`defer=True`) waits in `held` until a
    step has nothing else to run, as LangGraph's dry run has it (its edges from the nodes that
    ran last are then drawn as implicit, conditional ones)."""
    def deferred(node: str) -> bool:
        return node in graph.nodes and graph.nodes[node].defer

    ready = {n: t for n, t in nxt.items() if not deferred(n)}
    if ready:
        for node, triggers in nxt.items():
            if deferred(node):
                held[node] += triggers
        return ready
    for node, triggers in nxt.items():
        held[node] += triggers
    nxt = dict(held)
    held.clear()
    return nxt


def node_metadata(graph: CompiledStateGraph[Any, Any, Any, Any], node: str
                  ) -> dict[str, Any] | None:
    metadata = dict(graph.nodes[node].metadata or {})
    if graph.nodes[node].defer:
        metadata["defer"] = True
    before, after = node in graph.interrupt_before, node in graph.interrupt_after
    if before or after:
        metadata["__interrupt"] = ",".join(w for w, on in (("before", before), ("after", after))
                                           if on)
    return metadata or None


def draw(graph: CompiledStateGraph[Any, Any, Any, Any], xray: int | bool = False) -> Any:
    """LangChain's Graph of `graph` when langchain-core is installed, else a DrawableGraph.
    `xray` draws the graphs its nodes run inside it, `True` at every depth, a number to
    that many levels."""
    try:
        from langchain_core.runnables.graph import Graph
    except ImportError:
        return _drawn(graph, DrawableGraph, xray)

    class LangGraphDrawing(Graph):
        """LangChain's Graph, whose JSON names a node's runnable as LangGraph's does."""

        def to_json(self, *, with_schemas: bool = False) -> dict[str, Any]:
            return with_kinds(self, super().to_json(with_schemas=with_schemas))

    return _drawn(graph, LangGraphDrawing, xray)


def _drawn(graph: CompiledStateGraph[Any, Any, Any, Any], kind: Any,
           xray: int | bool = False) -> Any:
    drawable = kind()
    drawable.add_node(NodeKind(FUNCTION_ID), START)
    for name, spec in graph.nodes.items():
        drawable.add_node(_node_data(spec.fn), name, metadata=node_metadata(graph, name))
    for edge in edges(graph):
        if any(e.source == edge.source and e.target == edge.target for e in drawable.edges):
            continue
        if edge.target not in drawable.nodes:
            drawable.add_node(None, edge.target)
        drawable.add_edge(drawable.nodes[edge.source], drawable.nodes[edge.target],
                          edge.label if edge.label != edge.target else None, edge.conditional)
    if xray:
        deeper = xray if isinstance(xray, bool) or xray <= 0 else xray - 1
        for name, subgraph in graph.get_subgraphs():
            _expand(drawable, name, _drawn(subgraph, kind, deeper))
    return drawable


def _expand(drawable: Any, name: str, inner: Any) -> None:
    """Put `inner`'s drawing in place of node `name`: LangGraph's rule, with LangChain's
    own trimming of the inner graph's start and end where one edge leaves or enters them."""
    if len(inner.nodes) <= 1 or name not in drawable.nodes:
        return
    if not (inner.first_node() and inner.last_node()):
        return
    inner.trim_first_node()
    inner.trim_last_node()
    drawable.nodes.pop(name)
    first, last = drawable.extend(inner, prefix=name)
    for i, edge in enumerate(drawable.edges):
        if edge.source == name:
            edge = edge.copy(source=last.id)
        if edge.target == name:
            edge = edge.copy(target=first.id)
        drawable.edges[i] = edge


def _node_data(fn: Any) -> Any:
    from arqgraph.graph.subgraph import SubgraphNode

    if isinstance(fn, SubgraphNode):
        return NodeKind(GRAPH_ID)
    if callable(getattr(fn, "lc_id", None)) or type(fn).__module__.startswith("langchain"):
        return fn  # a LangChain runnable: LangChain names it
    return NodeKind(FUNCTION_ID)


def drawing_data(graph: CompiledStateGraph[Any, Any, Any, Any]) -> dict[str, Any]:
    """The graph's nodes, edges and Mermaid text as plain data, registered with the graph so
    that the dashboard, which does not load the graphs' code, can draw it. Empty when the
    graph cannot be drawn: a picture must never keep a graph from being served."""
    try:
        drawn = _drawn(graph, DrawableGraph)  # (LangChain's Graph would import for 1 s)
        return {"nodes": list(drawn.nodes),
                "edges": [{"source": e.source, "target": e.target,
                           "conditional": bool(e.conditional),
                           "label": None if e.data is None else str(e.data)}
                          for e in drawn.edges],
                "mermaid": drawn.draw_mermaid()}
    except Exception:  # (a drawing is a nicety)
        return {}
