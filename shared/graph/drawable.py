"""The drawing `get_graph()` returns without langchain-core (`DrawableGraph`), and how both
drawings name what runs a node in their JSON (`NodeKind`, `with_kinds`)."""

from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from typing import Any

MARKDOWN_SPECIAL = "*_`"  # a node name between these is shown as a paragraph (`__start__`)


@dataclass(frozen=True)
class NodeKind:
    """What runs a node, named by LangGraph's class id (`drawing.FUNCTION_ID`)."""

    lc_id: tuple[str, ...]


def with_kinds(drawable: Any, drawn: dict[str, Any]) -> dict[str, Any]:
    """`drawn` (a JSON drawing) with each node that a NodeKind runs shown as LangGraph's."""
    for node in drawn["nodes"]:
        data = drawable.nodes[node["id"]].data if node["id"] in drawable.nodes else None
        if isinstance(data, NodeKind):
            node["type"] = "runnable"
            node["data"] = {"id": list(data.lc_id), "name": node["id"]}
    return drawn


@dataclass
class DrawnNode:
    id: str
    name: str
    metadata: dict[str, Any] | None = None
    data: Any = None

    def copy(self, **changes: Any) -> DrawnNode:
        return replace(self, **changes)


@dataclass
class DrawnEdge:
    source: str
    target: str
    data: str | None = None
    conditional: bool = False

    def copy(self, **changes: Any) -> DrawnEdge:
        return replace(self, **changes)


@dataclass
class DrawableGraph:
    """The nodes and edges of a graph, drawn as LangChain's Graph draws them (mermaid, JSON)
    when langchain-core is not installed. Its Mermaid text draws an xray's inner nodes
    beside the others, not boxed as LangChain's."""

    nodes: dict[str, DrawnNode] = field(default_factory=dict)
    edges: list[DrawnEdge] = field(default_factory=list)

    def add_node(self, data: Any, id: str, *, metadata: dict[str, Any] | None = None
                 ) -> DrawnNode:
        node = self.nodes[id] = DrawnNode(id, id, metadata, data)
        return node

    def add_edge(self, source: DrawnNode, target: DrawnNode, data: str | None = None,
                 conditional: bool = False) -> DrawnEdge:
        edge = DrawnEdge(source.id, target.id, data, conditional)
        self.edges.append(edge)
        return edge

    def extend(self, inner: DrawableGraph, *, prefix: str) -> tuple[DrawnNode, DrawnNode]:
        """Add `inner`'s nodes and edges, their ids prefixed `prefix:`, as LangChain's."""
        def prefixed(node_id: str) -> str:
            return f"{prefix}:{node_id}"

        self.nodes.update({prefixed(k): v.copy(id=prefixed(k)) for k, v in inner.nodes.items()})
        self.edges += [e.copy(source=prefixed(e.source), target=prefixed(e.target))
                       for e in inner.edges]
        first, last = inner.first_node(), inner.last_node()
        assert first is not None and last is not None  # (`_expand` checked them)
        return first.copy(id=prefixed(first.id)), last.copy(id=prefixed(last.id))

    def first_node(self, exclude: tuple[str, ...] = ()) -> DrawnNode | None:
        """The one node no edge enters, if there is exactly one (LangChain's rule)."""
        targets = {e.target for e in self.edges if e.source not in exclude}
        found = [n for n in self.nodes.values() if n.id not in exclude and n.id not in targets]
        return found[0] if len(found) == 1 else None

    def last_node(self, exclude: tuple[str, ...] = ()) -> DrawnNode | None:
        """The one node no edge leaves, if there is exactly one (LangChain's rule)."""
        sources = {e.source for e in self.edges if e.target not in exclude}
        found = [n for n in self.nodes.values() if n.id not in exclude and n.id not in sources]
        return found[0] if len(found) == 1 else None

    def trim_first_node(self) -> None:
        first = self.first_node()
        if (first and self.first_node((first.id,))
                and sum(e.source == first.id for e in self.edges) == 1):
            self._remove(first.id)

    def trim_last_node(self) -> None:
        last = self.last_node()
        if (last and self.last_node((last.id,))
                and sum(e.target == last.id for e in self.edges) == 1):
            self._remove(last.id)

    def _remove(self, node_id: str) -> None:
        del self.nodes[node_id]
        self.edges = [e for e in self.edges if node_id not in (e.source, e.target)]

    def to_json(self) -> dict[str, Any]:
        return with_kinds(self, self._json())

    def _json(self) -> dict[str, Any]:
        return {
            "nodes": [{"id": n.id, **({"type": "", "data": ""} if n.data else {}),
                       **({"metadata": n.metadata} if n.metadata else {})}
                      for n in self.nodes.values()],
            "edges": [{"source": e.source, "target": e.target,
                       **({"data": e.data} if e.data is not None else {}),
                       **({"conditional": True} if e.conditional else {})}
                      for e in self.edges],
        }

    def draw_mermaid(self, *, with_styles: bool = True, **_: Any) -> str:
        """Mermaid flowchart text, as LangChain's Graph writes it: node lines only with
        styles; the one node no edge enters is `first`, the one no edge leaves `last`."""
        targets = {e.target for e in self.edges}
        sources = {e.source for e in self.edges}
        starts = [n for n in self.nodes if n not in targets]
        ends = [n for n in self.nodes if n not in sources]
        lines = ["---", "config:", "  flowchart:", "    curve: linear", "---", "graph TD;"]
        for node in self.nodes.values() if with_styles else ():
            label = node.name
            if label.startswith(tuple(MARKDOWN_SPECIAL)) and label.endswith(tuple(MARKDOWN_SPECIAL)):
                label = f"<p>{label}</p>"
            if node.metadata:
                label += "<hr/><small><em>" + "\n".join(
                    f"{k} = {v}" for k, v in node.metadata.items()) + "</em></small>"
            kind = ("first" if starts == [node.id] else "last" if ends == [node.id] else "")
            lines.append(f"\t{_safe(node.id)}([{label}]):::{kind}" if kind
                         else f"\t{_safe(node.id)}({label})")
        for edge in self.edges:
            if edge.data is None:
                arrow = " -.-> " if edge.conditional else " --> "
            elif edge.conditional:
                arrow = f" -. &nbsp;{edge.data}&nbsp; .-> "
            else:
                arrow = f" -- &nbsp;{edge.data}&nbsp; --> "
            lines.append(f"\t{_safe(edge.source)}{arrow}{_safe(edge.target)};")
        if with_styles:
            lines += ["\tclassDef default fill:#f2f0ff,line-height:1.2",
                      "\tclassDef first fill-opacity:0", "\tclassDef last fill:#bfb6fc"]
        return "\n".join(lines) + "\n"

    def draw_ascii(self) -> str:
        raise ImportError("drawing a graph in ASCII needs langchain-core and grandalf: "
                          "pip install 'arqgraph[langchain]' grandalf")

    def print_ascii(self) -> None:
        print(self.draw_ascii())  # noqa: T201 - LangChain's Graph prints too


def _safe(node_id: str) -> str:
    """A mermaid node id: other characters than letters, digits, `_` and `-` escaped."""
    allowed = string.ascii_letters + string.digits + "_-"
    return "".join(c if c in allowed else "\\" + format(ord(c), "x") for c in node_id)
