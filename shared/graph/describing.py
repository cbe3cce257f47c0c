"""What a compiled graph says about itself: its name, its input, output and context schemas,
its drawing, and its node cache. Kept apart from running it, as `ThreadMethods` keeps its threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from arqgraph.core.calls import cache_namespace

if TYPE_CHECKING:
    from arqgraph.core.schema import StateSchema
    from arqgraph.graph.compiled import CompiledStateGraph
    from arqgraph.graph.specs import NodeSpec
    from arqgraph.graph.state import StateGraph


class DescribingMethods:
    """LangGraph's schema, drawing and cache methods of `CompiledStateGraph`."""

    # (CompiledStateGraph's: its name, builder, schemas, nodes, cache and cluster)
    name: str
    builder: StateGraph[Any, Any, Any, Any]
    schema: StateSchema
    context_schema: Any
    nodes: dict[str, NodeSpec]
    cache: Any
    cluster_url: str | None

    def get_name(self, suffix: str | None = None) -> str:
        return f"{self.name}{suffix}" if suffix else self.name

    def get_input_jsonschema(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The JSON schema of the graph's input (see `arqgraph.graph.jsonschema`)."""
        from arqgraph.graph.jsonschema import json_schema

        return json_schema(self.builder.input_schema, self.schema, self.get_name("Input"))

    def get_output_jsonschema(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        from arqgraph.graph.jsonschema import json_schema

        return json_schema(self.builder.output_schema, self.schema, self.get_name("Output"))

    def get_context_jsonschema(self) -> dict[str, Any] | None:
        from arqgraph.graph.jsonschema import context_json_schema

        return context_json_schema(self.context_schema)

    def get_input_schema(self, config: Mapping[str, Any] | None = None) -> Any:
        """The graph's input as a pydantic model."""
        from arqgraph.graph.jsonschema import input_model

        return input_model(self.builder.input_schema, self.get_name("Input"))

    def get_output_schema(self, config: Mapping[str, Any] | None = None) -> Any:
        from arqgraph.graph.jsonschema import output_model

        return output_model(self.builder.output_schema, self.get_name("Output"))

    def get_graph(self, config: Mapping[str, Any] | None = None, *, xray: int | bool = False) -> Any:
        """A drawable picture of the graph, as LangGraph's (see `arqgraph.graph.drawing`);
        `xray` draws the graphs its nodes run inside it."""
        from arqgraph.graph.drawing import draw

        return draw(_compiled(self), xray)

    def drawing_data(self) -> dict[str, Any]:
        """Its nodes, edges and Mermaid text as plain data, which its orchestrators register
        so that the dashboard can draw it without its code (`arqgraph.graph.drawing`). Drawn
        once: the embedded default registers the graph at each call's start."""
        drawn: dict[str, Any] | None = self.__dict__.get("_drawing_data")
        if drawn is None:
            from arqgraph.graph.drawing import drawing_data

            drawn = self.__dict__["_drawing_data"] = drawing_data(_compiled(self))
        return drawn

    async def aget_graph(
        self, config: Mapping[str, Any] | None = None, *, xray: int | bool = False
    ) -> Any:
        return self.get_graph(config, xray=xray)

    def cache_namespaces(self, nodes: Sequence[str] | None = None) -> list[tuple[str, ...]]:
        """The cache namespaces of these nodes (all by default), as LangGraph names them."""
        return [cache_namespace(n, self.nodes[n].fn) for n in nodes or self.nodes if n in self.nodes]

    async def aclear_cache(self, nodes: Sequence[str] | None = None) -> None:
        """Forget the cached results of these nodes (all by default)."""
        if self.cache is None:
            raise ValueError("No cache is set for this graph. Cannot clear cache.")
        if self.cluster_url is None:
            await self.cache.aclear(self.cache_namespaces(nodes))
            return
        from arqgraph.storage.connection import connect
        from arqgraph.storage.node_cache import RedisCache

        redis = await connect(self.cluster_url, what="client")
        try:
            await RedisCache(redis).aclear(self.cache_namespaces(nodes))
        finally:
            await redis.aclose()

    def clear_cache(self, nodes: Sequence[str] | None = None) -> None:
        from arqgraph.embedded import run_sync

        run_sync(self.aclear_cache(nodes))


def _compiled(graph: DescribingMethods) -> CompiledStateGraph[Any, Any, Any, Any]:
    return cast("CompiledStateGraph[Any, Any, Any, Any]", graph)
