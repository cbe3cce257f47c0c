"""The interface of a node cache: values by (namespace, key), each with a time to live.

A node whose `CachePolicy` gives a key already cached returns the cached result without
running. arqgraph keeps a node's cached result as the bytes its outcome crosses the wire in,
so a cache holds plain bytes. On a cluster every worker shares one cache in Redis (whatever
cache the graph was compiled with: its presence turns caching on); embedded, the graph's own
cache object is used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

ValueT = TypeVar("ValueT")
Namespace = tuple[str, ...]
FullKey = tuple[Namespace, str]


class BaseCache(ABC, Generic[ValueT]):
    """A cache of values by (namespace, key). `serde` is accepted for LangGraph's signature;
    arqgraph's values are bytes already."""

    def __init__(self, *, serde: Any = None) -> None:
        self.serde = serde

    @abstractmethod
    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        """The cached values of those keys that have one (and have not expired)."""

    @abstractmethod
    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        """`get`, for async code."""

    @abstractmethod
    def set(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """Cache each value for its time to live in seconds (None: no expiry)."""

    @abstractmethod
    async def aset(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """`set`, for async code."""

    @abstractmethod
    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Forget the values of these namespaces (of every namespace when None)."""

    @abstractmethod
    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """`clear`, for async code."""
