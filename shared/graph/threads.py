"""A compiled graph's threads: its state, history and updates, and the subgraphs whose threads
a config can name. Embedded with a checkpointer, they live in the graph's in-memory store; on a
cluster, in Redis. Every call goes through the same `Client` methods either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from arqgraph.core.graphs import child_graph, remember
from arqgraph.graph.subgraph import graph_at, shown_snapshot, subgraphs_of
from arqgraph.types import StateSnapshot, StateUpdate

if TYPE_CHECKING:
    from arqgraph.graph.compiled import CompiledStateGraph


class ThreadMethods:
    """LangGraph's thread methods of `CompiledStateGraph`, kept apart from running it."""

    # (CompiledStateGraph's: its name, its cluster if bound to one, its saver, and a call's
    # config with its own merged in)
    name: str
    cluster_url: str | None
    checkpointer: Any
    _merged: Callable[..., dict[str, Any] | None]

    def _graph_at(self, config: Mapping[str, Any] | None) -> CompiledStateGraph[Any, Any, Any, Any]:
        return graph_at(self, config)  # type: ignore[no-any-return]

    def get_subgraphs(
        self, *, namespace: str | None = None, recurse: bool = False
    ) -> Iterator[tuple[str, CompiledStateGraph[Any, Any, Any, Any]]]:
        """The graphs this graph's nodes run, as (namespace, graph): its nodes that are
        graphs, and graphs its node functions invoke; with `recurse`, theirs too (`a|b`).
        `namespace` picks the one at that namespace, matched by whole segments."""
        return subgraphs_of(self, namespace, recurse)

    async def aget_subgraphs(
        self, *, namespace: str | None = None, recurse: bool = False
    ) -> AsyncIterator[tuple[str, CompiledStateGraph[Any, Any, Any, Any]]]:
        for found in self.get_subgraphs(namespace=namespace, recurse=recurse):
            yield found

    def _snapshot(self, snapshot: StateSnapshot) -> StateSnapshot:
        return shown_snapshot(self, snapshot)

    async def aget_state(
        self, config: Mapping[str, Any], *, subgraphs: bool = False, **_: Any
    ) -> StateSnapshot:
        config = self._merged(config) or {}
        snapshot = await self._on_threads(lambda client: client.get_state(config, subgraphs))
        return self._graph_at(config)._snapshot(snapshot)

    def get_state(self, config: Mapping[str, Any], **kwargs: Any) -> StateSnapshot:
        from arqgraph.embedded import run_sync

        return run_sync(self.aget_state(config, **kwargs))

    async def aget_state_history(
        self, config: Mapping[str, Any], *, filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None, limit: int | None = None,
    ) -> AsyncIterator[StateSnapshot]:
        history = await self._on_threads(
            lambda client: client.get_state_history(self._merged(config) or {}, filter=filter,
                                                    before=before, limit=limit)
        )
        for snapshot in history:
            yield self._graph_at(config)._snapshot(snapshot)

    def get_state_history(
        self, config: Mapping[str, Any], *, filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None, limit: int | None = None,
    ) -> Iterator[StateSnapshot]:
        from arqgraph.embedded import run_sync

        history = run_sync(self._on_threads(
            lambda client: client.get_state_history(self._merged(config) or {}, filter=filter,
                                                    before=before, limit=limit)
        ))
        yield from map(self._graph_at(config)._snapshot, history)

    async def aupdate_state(
        self, config: Mapping[str, Any], values: Any, as_node: str | None = None, **_: Any
    ) -> dict[str, Any]:
        name = self._updated_graph(config)
        return await self._on_threads(  # type: ignore[no-any-return]
            lambda client: client.update_state(name, self._merged(config) or {}, values,
                                               as_node)
        )

    def _updated_graph(self, config: Mapping[str, Any]) -> str:
        """The graph an update of `config`'s thread runs as: this one, or the subgraph its
        `checkpoint_ns` names (its nodes and channels, not this graph's, write there)."""
        namespace = str((config.get("configurable") or {}).get("checkpoint_ns") or "")
        if not namespace:
            return self.name
        recast = "|".join(part.split(":")[0] for part in namespace.split("|"))
        for _, graph in self.get_subgraphs(namespace=recast, recurse=True):
            return child_graph(self.name, remember(graph))
        raise ValueError(f"Subgraph {recast} not found")

    def update_state(
        self, config: Mapping[str, Any], values: Any, as_node: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        from arqgraph.embedded import run_sync

        return run_sync(self.aupdate_state(config, values, as_node, **kwargs))

    async def abulk_update_state(
        self, config: Mapping[str, Any], supersteps: Sequence[Sequence[StateUpdate]]
    ) -> dict[str, Any]:
        """Apply `supersteps` of `StateUpdate`s in turn, each superstep a checkpoint."""
        name = self._updated_graph(config)
        return await self._on_threads(  # type: ignore[no-any-return]
            lambda client: client.bulk_update_state(name, self._merged(config) or {},
                                                    supersteps)
        )

    def bulk_update_state(
        self, config: Mapping[str, Any], supersteps: Sequence[Sequence[StateUpdate]]
    ) -> dict[str, Any]:
        from arqgraph.embedded import run_sync

        return run_sync(self.abulk_update_state(config, supersteps))

    async def _on_threads(self, call: Callable[[Any], Awaitable[Any]]) -> Any:
        from arqgraph.embedded import backend

        if self.cluster_url is None and self.checkpointer is None:
            raise ValueError("No checkpointer set")
        async with backend(cast("CompiledStateGraph[Any, Any, Any, Any]", self)) as client:
            return await call(client)
