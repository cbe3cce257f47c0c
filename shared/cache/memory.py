"""A node cache in this process's memory (thread-safe: sync nodes run on worker threads)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from arqgraph.cache.base import BaseCache, FullKey, Namespace, ValueT


class InMemoryCache(BaseCache[ValueT]):
    """Values by namespace and key, each with its expiry (monotonic seconds, or None)."""

    def __init__(self, *, serde: Any = None) -> None:
        super().__init__(serde=serde)
        self._cache: dict[Namespace, dict[str, tuple[ValueT, float | None]]] = {}
        self._lock = threading.RLock()

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        now = time.monotonic()
        found: dict[FullKey, ValueT] = {}
        with self._lock:
            for ns, key in keys:
                entry = self._cache.get(tuple(ns), {}).get(key)
                if entry is None:
                    continue
                value, expiry = entry
                if expiry is None or now < expiry:
                    found[(tuple(ns), key)] = value
                else:
                    del self._cache[tuple(ns)][key]
        return found

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        return self.get(keys)

    def set(self, keys: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        now = time.monotonic()
        with self._lock:
            for (ns, key), (value, ttl) in keys.items():
                expiry = None if ttl is None else now + ttl
                self._cache.setdefault(tuple(ns), {})[key] = (value, expiry)

    async def aset(self, keys: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        self.set(keys)

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        with self._lock:
            if namespaces is None:
                self._cache.clear()
            for ns in namespaces or ():
                self._cache.pop(tuple(ns), None)

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        self.clear(namespaces)
