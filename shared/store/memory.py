"""`InMemoryStore`: the store of the embedded default, in this process's memory (LangGraph's
name and behaviour). Semantic search embeds the fields its `index` names when items are put,
and ranks a search's items by cosine similarity to the query."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

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
    query_vector,
    ranked,
    stored_for,
)


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
        with self._lock:
            return [self._one(op) for op in ops]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return self.batch(ops)

    def _one(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            stored = self._live(op.namespace, op.key, op.refresh_ttl)
            return stored.item(op.namespace, op.key) if stored else None
        if isinstance(op, PutOp):
            self._put(op)
            return None
        if isinstance(op, SearchOp):
            found = [(ns, key, s) for ns in list(self._data)
                     if ns[:len(op.namespace_prefix)] == op.namespace_prefix
                     for key in list(self._data.get(ns, {}))
                     if (s := self._live(ns, key, op.refresh_ttl)) is not None
                     and matches(s.value, op.filter)]
            return ranked(found, query_vector(self.index_config, op.query), op.limit,
                          op.offset)
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

    def _put(self, op: PutOp) -> None:
        items = self._data.setdefault(op.namespace, {})
        if op.value is None:
            items.pop(op.key, None)
            return
        earlier = items.get(op.key)
        items[op.key] = stored_for(op, earlier.created_at if earlier else None, self.index_config)
