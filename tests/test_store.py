"""One conformance suite for the long-term memory stores: LangGraph's InMemoryStore is the
reference; arqgraph's InMemoryStore and its RedisStore (over fakeredis here, over a real
redis-server in the cluster differential tests) must give the same answers to the same calls:
puts, gets, deletes, filtered and paged searches, semantic search, namespaces, TTLs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from arqgraph.embedded import in_memory_redis
from arqgraph.storage.long_term import RedisStore
from arqgraph.store.base import InvalidNamespaceError
from arqgraph.store.memory import InMemoryStore
from tests.differential.store_cases import LETTERS, embed

pytest.importorskip("langgraph", reason="the reference store is LangGraph's")

INDEX = {"dims": len(LETTERS), "embed": embed, "fields": ["text"]}


async def reference(index: Any = None) -> Any:
    from langgraph.store.memory import InMemoryStore as Theirs

    return Theirs(index=index) if index else Theirs()


async def in_memory(index: Any = None) -> Any:
    return InMemoryStore(index=index)


async def in_redis(index: Any = None) -> Any:
    return RedisStore(in_memory_redis(), index=index)


STORES = {"memory": in_memory, "redis": in_redis}


def shown(result: Any) -> Any:
    if isinstance(result, list):
        return [shown(r) for r in result]
    if hasattr(result, "key") and hasattr(result, "value"):
        score = getattr(result, "score", None)
        return (tuple(result.namespace), result.key, result.value,
                None if score is None else round(score, 6))
    return result


async def transcript(store: Any) -> list[Any]:
    out: list[Any] = []
    for user, facts in (("ada", ["likes tea", "owns a cat"]), ("bo", ["rides a bike", "a"])):
        for i, fact in enumerate(facts):
            await store.aput(("memories", user), f"f{i}", {"text": fact, "n": i, "tags": [user]})
    await store.aput(("memories", "ada"), "f0", {"text": "likes green tea", "n": 5})
    await store.aput(("other",), "x", {"text": "unrelated", "n": 9})
    out.append(shown(await store.aget(("memories", "ada"), "f0")))
    out.append(shown(await store.aget(("memories", "ada"), "missing")))
    out.append(shown(await store.asearch(("memories",))))
    out.append(shown(await store.asearch(("memories",), limit=2, offset=1)))
    out.append(shown(await store.asearch((), filter={"n": {"$gte": 1, "$lt": 9}})))
    out.append(shown(await store.asearch(("memories",), filter={"tags": ["bo"]})))
    out.append(shown(await store.asearch(("memories",), query="who rides a bike?", limit=3)))
    await store.adelete(("memories", "bo"), "f1")
    out.append(shown(await store.asearch(("memories", "bo"))))
    out.append(await store.alist_namespaces())
    out.append(await store.alist_namespaces(prefix=("memories",), max_depth=1))
    out.append(await store.alist_namespaces(suffix=("ada",)))
    out.append(await store.alist_namespaces(prefix=("*", "bo")))
    return out


@pytest.mark.parametrize("make", list(STORES.values()), ids=list(STORES))
async def test_the_stores_answer_as_langgraphs(make: Callable[..., Awaitable[Any]]) -> None:
    expected = await transcript(await reference(INDEX))
    assert await transcript(await make(INDEX)) == expected


@pytest.mark.parametrize("make", list(STORES.values()), ids=list(STORES))
async def test_bad_namespaces_are_refused(make: Callable[..., Awaitable[Any]]) -> None:
    store = await make()
    for namespace in [(), ("a.b",), ("langgraph", "x"), ("",)]:
        with pytest.raises(InvalidNamespaceError):
            await store.aput(namespace, "k", {"v": 1})


@pytest.mark.parametrize("make", list(STORES.values()), ids=list(STORES))
async def test_items_expire_after_their_ttl(make: Callable[..., Awaitable[Any]]) -> None:
    store = await make()
    await store.aput(("t",), "short", {"v": 1}, ttl=0.001)  # 60 ms
    await store.aput(("t",), "kept", {"v": 2})
    assert await store.aget(("t",), "short") is not None
    deadline = time.monotonic() + 10
    while await store.aget(("t",), "short", refresh_ttl=False) is not None:
        assert time.monotonic() < deadline, "the item never expired"
        await asyncio.sleep(0.02)
    assert [i.key for i in await store.asearch(("t",))] == ["kept"]


def test_redis_store_serves_sync_nodes_from_their_threads() -> None:
    async def main() -> list[Any]:
        store = RedisStore(in_memory_redis())

        def sync_node() -> Any:
            store.put(("s",), "k", {"v": 1})
            return store.get(("s",), "k").value  # type: ignore[union-attr]

        value = await asyncio.to_thread(sync_node)
        with pytest.raises(RuntimeError, match="async API"):
            store.get(("s",), "k")
        return [value]

    assert asyncio.run(main()) == [{"v": 1}]
