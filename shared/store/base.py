"""Long-term memory shared across threads: LangGraph's `BaseStore` API (put, get, search,
delete, list_namespaces, batch, and their async twins, with TTLs), and the search rules every
store follows (filters, paging, semantic search over embedded fields), as pure functions.

A store keeps JSON-like dicts (`Item.value`) under a namespace (a tuple of strings) and a key.
`InMemoryStore` (`arqgraph.store.memory`) keeps them in the process; on a cluster every worker
shares `arqgraph.storage.long_term.RedisStore`, which applies the same rules.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, TypedDict

NamespacePath = tuple[str, ...]
NamespaceMatchType = Literal["prefix", "suffix"]


class NotProvided:
    """The default of `put(ttl=...)`: the store's default TTL applies."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotProvided()


@dataclass
class Item:
    """A stored value with its place and times."""

    value: dict[str, Any]
    key: str
    namespace: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    def dict(self) -> dict[str, Any]:
        return {"namespace": list(self.namespace), "key": self.key, "value": self.value,
                "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}


@dataclass
class SearchItem(Item):
    """An item a search found, with its similarity to the query (None without a query)."""

    score: float | None = None

    def __init__(self, namespace: tuple[str, ...], key: str, value: dict[str, Any],
                 created_at: datetime, updated_at: datetime, score: float | None = None) -> None:
        super().__init__(value=value, key=key, namespace=namespace, created_at=created_at,
                         updated_at=updated_at)
        self.score = score

    def dict(self) -> dict[str, Any]:
        return {**super().dict(), "score": self.score}


class GetOp(NamedTuple):
    namespace: tuple[str, ...]
    key: str
    refresh_ttl: bool = True


class SearchOp(NamedTuple):
    namespace_prefix: tuple[str, ...]
    filter: dict[str, Any] | None = None
    limit: int = 10
    offset: int = 0
    query: str | None = None
    refresh_ttl: bool = True


class MatchCondition(NamedTuple):
    match_type: NamespaceMatchType
    path: NamespacePath


class ListNamespacesOp(NamedTuple):
    match_conditions: tuple[MatchCondition, ...] | None = None
    max_depth: int | None = None
    limit: int = 100
    offset: int = 0


class PutOp(NamedTuple):
    """A put, or with `value=None` a delete. `index`: the fields to embed (False: none, None:
    the store's default); `ttl`: minutes the item lives (None: for ever)."""

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any] | None
    index: Literal[False] | list[str] | None = None  # type: ignore[assignment]
    ttl: float | None = None


Op = GetOp | SearchOp | PutOp | ListNamespacesOp
Result = Item | list[Item] | list[SearchItem] | list[tuple[str, ...]] | None


class IndexConfig(TypedDict, total=False):
    """Semantic search: `embed` (a function of a list of texts, or a LangChain Embeddings),
    `dims` (the vectors' size) and `fields` (the paths to embed, "$" for the whole value)."""

    dims: int
    embed: Any
    fields: list[str] | None


class TTLConfig(TypedDict, total=False):
    refresh_on_read: bool
    default_ttl: float | None
    sweep_interval_minutes: int | None


class InvalidNamespaceError(ValueError):
    """A namespace a store cannot keep (empty, not strings, with a "." or the reserved
    "langgraph" root)."""


def validate_op_namespace(op: Op) -> None:
    """Refuse a put whose namespace no store can keep (InvalidNamespaceError)."""
    if isinstance(op, PutOp):
        _check_namespace(op.namespace)


def _check_namespace(namespace: tuple[str, ...]) -> None:
    if not namespace:
        raise InvalidNamespaceError("Namespace cannot be empty.")
    for label in namespace:
        if not isinstance(label, str):
            raise InvalidNamespaceError(
                f"Namespace labels must be strings, but got {type(label).__name__}: {namespace}")
        if "." in label:
            raise InvalidNamespaceError(
                f"Namespace labels cannot contain periods ('.'). Got {label} in {namespace}")
        if not label:
            raise InvalidNamespaceError(f"Namespace labels cannot be empty strings: {namespace}")
    if namespace[0] == "langgraph":
        raise InvalidNamespaceError(f'Root label for namespace cannot be "langgraph": {namespace}')


class BaseStore(ABC):
    """The API every store gives; a store implements `batch` and `abatch`."""

    supports_ttl: bool = False
    ttl_config: TTLConfig | None = None

    @abstractmethod
    def batch(self, ops: Iterable[Op]) -> list[Result]: ...

    @abstractmethod
    async def abatch(self, ops: Iterable[Op]) -> list[Result]: ...

    def get(self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None
            ) -> Item | None:
        return self.batch([GetOp(namespace, str(key), self._refresh(refresh_ttl))])[0]  # type: ignore[return-value]

    def search(self, namespace_prefix: tuple[str, ...], /, *, query: str | None = None,
               filter: dict[str, Any] | None = None, limit: int = 10, offset: int = 0,
               refresh_ttl: bool | None = None) -> list[SearchItem]:
        op = SearchOp(namespace_prefix, filter, limit, offset, query, self._refresh(refresh_ttl))
        return self.batch([op])[0]  # type: ignore[return-value]

    def put(self, namespace: tuple[str, ...], key: str, value: Mapping[str, Any],
            index: Literal[False] | list[str] | None = None, *,
            ttl: float | None | NotProvided = NOT_GIVEN) -> None:
        self.batch([self._put_op(namespace, key, value, index, ttl)])

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        self.batch([PutOp(namespace, str(key), None)])

    def list_namespaces(self, *, prefix: NamespacePath | None = None,
                        suffix: NamespacePath | None = None, max_depth: int | None = None,
                        limit: int = 100, offset: int = 0) -> list[tuple[str, ...]]:
        return self.batch([_list_op(prefix, suffix, max_depth, limit, offset)])[0]  # type: ignore[return-value]

    async def aget(self, namespace: tuple[str, ...], key: str, *,
                   refresh_ttl: bool | None = None) -> Item | None:
        return (await self.abatch([GetOp(namespace, str(key), self._refresh(refresh_ttl))]))[0]  # type: ignore[return-value]

    async def asearch(self, namespace_prefix: tuple[str, ...], /, *, query: str | None = None,
                      filter: dict[str, Any] | None = None, limit: int = 10, offset: int = 0,
                      refresh_ttl: bool | None = None) -> list[SearchItem]:
        op = SearchOp(namespace_prefix, filter, limit, offset, query, self._refresh(refresh_ttl))
        return (await self.abatch([op]))[0]  # type: ignore[return-value]

    async def aput(self, namespace: tuple[str, ...], key: str, value: Mapping[str, Any],
                   index: Literal[False] | list[str] | None = None, *,
                   ttl: float | None | NotProvided = NOT_GIVEN) -> None:
        await self.abatch([self._put_op(namespace, key, value, index, ttl)])

    async def adelete(self, namespace: tuple[str, ...], key: str) -> None:
        await self.abatch([PutOp(namespace, str(key), None)])

    async def alist_namespaces(self, *, prefix: NamespacePath | None = None,
                               suffix: NamespacePath | None = None,
                               max_depth: int | None = None, limit: int = 100,
                               offset: int = 0) -> list[tuple[str, ...]]:
        return (await self.abatch([_list_op(prefix, suffix, max_depth, limit, offset)]))[0]  # type: ignore[return-value]

    def _refresh(self, refresh_ttl: bool | None) -> bool:
        if refresh_ttl is not None:
            return refresh_ttl
        return bool((self.ttl_config or {}).get("refresh_on_read", True))

    def _put_op(self, namespace: tuple[str, ...], key: str, value: Mapping[str, Any],
                index: Literal[False] | list[str] | None, ttl: float | None | NotProvided
                ) -> PutOp:
        _check_namespace(namespace)
        if isinstance(ttl, NotProvided):
            ttl = (self.ttl_config or {}).get("default_ttl")
        if ttl is not None and not self.supports_ttl:
            raise NotImplementedError(f"TTL is not supported by {type(self).__name__}")
        return PutOp(namespace, str(key), dict(value), index, ttl)


def _list_op(prefix: NamespacePath | None, suffix: NamespacePath | None,
             max_depth: int | None, limit: int, offset: int) -> ListNamespacesOp:
    wanted: list[tuple[NamespaceMatchType, NamespacePath | None]] = [
        ("prefix", prefix), ("suffix", suffix)]
    conditions = tuple(MatchCondition(kind, path) for kind, path in wanted if path)
    return ListNamespacesOp(conditions or None, max_depth, limit, offset)


# -- the rules every store applies ---------------------------------------------------------------


@dataclass
class Stored:
    """An item as a store keeps it: its value, times, expiry and embedded vectors."""

    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: float | None = None  # unix time
    ttl: float | None = None  # minutes, to refresh the expiry on reads
    vectors: list[list[float]] = field(default_factory=list)

    def item(self, namespace: tuple[str, ...], key: str) -> Item:
        return Item(value=self.value, key=key, namespace=namespace,
                    created_at=self.created_at, updated_at=self.updated_at)


def now() -> datetime:
    return datetime.now(UTC)


def matches(value: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    """Whether a value passes a search filter: equal values, or operators `$eq`, `$ne`,
    `$gt`, `$gte`, `$lt`, `$lte` (nested keys by dotted path)."""
    for path, wanted in (filter or {}).items():
        actual = text_at_path(value, path, raw=True)
        if isinstance(wanted, dict) and wanted and all(k.startswith("$") for k in wanted):
            if not all(_compare(op, actual, operand) for op, operand in wanted.items()):
                return False
        elif actual != wanted:
            return False
    return True


def _compare(op: str, actual: Any, operand: Any) -> bool:
    try:
        return bool({
            "$eq": lambda: actual == operand, "$ne": lambda: actual != operand,
            "$gt": lambda: actual > operand, "$gte": lambda: actual >= operand,
            "$lt": lambda: actual < operand, "$lte": lambda: actual <= operand,
        }[op]())
    except KeyError:
        raise ValueError(f"Unsupported operator in a store filter: {op}") from None
    except TypeError:
        return False


def text_at_path(value: Any, path: str, raw: bool = False) -> Any:
    """The part of a value a path names ("$" the whole value, "a.b" nested keys, "a[*]"
    every element of a list): as texts to embed, or with `raw` as it is."""
    if path == "$":
        return value if raw else [json.dumps(value, sort_keys=True, default=str)]
    current: list[Any] = [value]
    for part in path.split("."):
        each = part.endswith("[*]")
        name = part[:-3] if each else part
        nxt: list[Any] = []
        for node in current:
            if isinstance(node, Mapping) and name in node:
                child = node[name]
                nxt.extend(child if each and isinstance(child, list) else [child])
        current = nxt
    if raw:
        return current[0] if len(current) == 1 else (current or None)
    return [v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
            for v in current]


def tokenize_path(path: str) -> list[str]:
    """A path's parts: keys, and "[*]" for every element of a list."""
    parts: list[str] = []
    for part in path.split("."):
        if part.endswith("[*]"):
            parts += [p for p in (part[:-3], "[*]") if p]
        else:
            parts.append(part)
    return parts


def get_text_at_path(obj: Any, path: str | list[str]) -> list[str]:
    """The texts of a value a path names, to embed ("$" the whole value)."""
    texts: list[str] = text_at_path(
        obj, path if isinstance(path, str) else ".".join(path).replace(".[*]", "[*]"))
    return texts


def stored_for(op: PutOp, created_at: datetime | None, vectors: list[list[float]]) -> Stored:
    """What a put keeps: the value, its times (`created_at` of the item it replaces), its
    expiry, and the vectors of the fields the index embeds (`arqgraph.store.embedding`)."""
    moment = now()
    return Stored(value=dict(op.value or {}), created_at=created_at or moment, updated_at=moment,
                  ttl=op.ttl, vectors=vectors,
                  expires_at=time.time() + op.ttl * 60 if op.ttl is not None else None)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def ranked(found: list[tuple[tuple[str, ...], str, Stored]], query_vector: list[float] | None,
           limit: int, offset: int) -> list[SearchItem]:
    """A search's page: by similarity to the query when there is one (an item's best
    field), else in the order found (as LangGraph: the order items were first put)."""
    scored = [(max((cosine(query_vector, v) for v in s.vectors), default=None)
               if query_vector is not None else None, ns, key, s) for ns, key, s in found]
    if query_vector is not None:
        scored.sort(key=lambda x: -1e9 if x[0] is None else x[0], reverse=True)
    return [SearchItem(ns, key, s.value, s.created_at, s.updated_at, score)
            for score, ns, key, s in scored[offset:offset + limit]]


def namespaces_page(namespaces: Iterable[tuple[str, ...]], op: ListNamespacesOp
                    ) -> list[tuple[str, ...]]:
    """`list_namespaces`: those matching every condition ("*" matches any label), cut at
    `max_depth`, sorted, paged."""
    def fits(ns: tuple[str, ...], condition: MatchCondition) -> bool:
        path = condition.path
        if len(path) > len(ns):
            return False
        part = ns[:len(path)] if condition.match_type == "prefix" else ns[-len(path):]
        return all(p == "*" or p == n for p, n in zip(path, part, strict=True))

    kept = {ns[:op.max_depth] if op.max_depth is not None else ns for ns in namespaces
            if all(fits(ns, c) for c in op.match_conditions or ())}
    return sorted(kept)[op.offset:op.offset + op.limit]
