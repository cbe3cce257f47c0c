"""`InMemoryStore`: the store of the embedded default, in this process's memory (LangGraph's
name and behaviour). Semantic search embeds the fields its `index` names when items are put,
and ranks a search's items by cosine similarity to the query."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from arqgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchOp,
    Stored,
    TTLConfig,
    matches,
    namespaces_page,
    ranked,
    stored_for,
)
from arqgraph.store.embedding import aput_vectors, aquery_vector, put_vectors, query_vector


class InMemoryStore(BaseStore):
    """Items in a dict per namespace; expired ones are dropped as they are read."""

    supports_ttl = True

    def __init__(self, *, index: IndexConfig | None = None, ttl: TTLConfig | None = None
                 ) -> None:
        self.index_config = index
        self.ttl_config = ttl
        self._data: dict[tuple[str, ...], dict[str, Stored]] = {}
        self._lock = threading.Lock()  # (sync nodes run in threads)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        embedded = [put_vectors(op, self.index_config) if isinstance(op, PutOp)
                    else query_vector(self.index_config, op.query)
                    if isinstance(op, SearchOp) else None for op in ops]
        with self._lock:
            return [self._one(op, e) for op, e in zip(ops, embedded, strict=True)]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """As `batch`, embedding with the index's async API (an async `embed` works here)."""
        ops = list(ops)
        embedded = [await aput_vectors(op, self.index_config) if isinstance(op, PutOp)
                    else await aquery_vector(self.index_config, op.query)
                    if isinstance(op, SearchOp) else None for op in ops]
        with self._lock:
            return [self._one(op, e) for op, e in zip(ops, embedded, strict=True)]

    def _one(self, op: Op, embedded: Any) -> Result:
        """One operation; `embedded` is a put's vectors or a search's query vector, made
        before the lock is taken (an embedding may take a while)."""
        if isinstance(op, GetOp):
            stored = self._live(op.namespace, op.key, op.refresh_ttl)
            return stored.item(op.namespace, op.key) if stored else None
        if isinstance(op, PutOp):
            self._put(op, embedded)
            return None
        if isinstance(op, SearchOp):
            found = [(ns, key, s) for ns in list(self._data)
                     if ns[:len(op.namespace_prefix)] == op.namespace_prefix
                     for key in list(self._data.get(ns, {}))
                     if (s := self._live(ns, key, op.refresh_ttl)) is not None
                     and matches(s.value, op.filter)]
            return ranked(found, embedded, op.limit, op.offset)
        if isinstance(op, ListNamespacesOp):
            return namespaces_page((ns for ns, items in self._data.items() if items), op)
        raise TypeError(f"unknown store operation {op!r}")

    def _live(self, namespace: tuple[str, ...], key: str, refresh: bool) -> Stored | None:
        stored = self._data.get(namespace, {}).get(key)
        if stored is None:
            return None
        if stored.expires_at is not None and stored.expires_at <= time.time():
            del self._data[namespace][key]
            return None
        if refresh and stored.ttl is not None:
            stored.expires_at = time.time() + stored.ttl * 60
        return stored

    def _put(self, op: PutOp, vectors: list[list[float]]) -> None:
        items = self._data.setdefault(op.namespace, {})
        if op.value is None:
            items.pop(op.key, None)
            return
        earlier = items.get(op.key)
        items[op.key] = stored_for(op, earlier.created_at if earlier else None, vectors)
