"""One conformance suite for the long-term memory stores: LangGraph's InMemoryStore is the
reference; arqgraph's InMemoryStore and its RedisStore (here over the in-memory store and over
fakeredis with the real Lua, over a real redis-server in the cluster differential tests) must
give the same answers to the same calls: puts, gets, deletes, filtered and paged searches,
semantic search, namespaces, TTLs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from arq.connections import ArqRedis

from arqgraph.storage.long_term import RedisStore
from arqgraph.store.base import InvalidNamespaceError
from arqgraph.store.memory import InMemoryStore
from tests.differential.store_cases import LETTERS, embed

pytest.importorskip("langgraph", reason="the reference store is LangGraph's")

INDEX = {"dims": len(LETTERS), "embed": embed, "fields": ["text"]}


async def aembed(texts: list[str]) -> list[list[float]]:
    """`embed` as an async function: LangGraph's stores take either."""
    await asyncio.sleep(0)
    return embed(texts)


ASYNC_INDEX = {**INDEX, "embed": aembed}


async def reference(index: Any = None) -> Any:
    from langgraph.store.memory import InMemoryStore as Theirs

    return Theirs(index=index) if index else Theirs()


async def in_memory(redis: Callable[[], ArqRedis], index: Any = None) -> Any:
    return InMemoryStore(index=index)


async def in_redis(redis: Callable[[], ArqRedis], index: Any = None) -> Any:
    return RedisStore(redis(), index=index)


# arqgraph's InMemoryStore (no Redis: the `protocol_redis` it gets goes unused), and its
# RedisStore on each implementation of the protocol
STORES = pytest.mark.parametrize(("make", "protocol_redis"), [
    pytest.param(in_memory, "memory", id="memory"),
    pytest.param(in_redis, "memory", id="redis-memory"),
    pytest.param(in_redis, "lua", id="redis-lua"),
], indirect=["protocol_redis"])


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


@STORES
@pytest.mark.parametrize("index", [INDEX, ASYNC_INDEX], ids=["sync-embed", "async-embed"])
async def test_the_stores_answer_as_langgraphs(
    make: Callable[..., Awaitable[Any]], protocol_redis: Callable[[], ArqRedis],
    index: dict[str, Any],
) -> None:
    expected = await transcript(await reference(index))
    assert await transcript(await make(protocol_redis, index)) == expected


async def test_an_async_embedding_refuses_the_sync_api_of_the_in_memory_store() -> None:
    """As LangGraph's: a sync call cannot wait for an async embedding (a put without one
    still works)."""
    from langgraph.store.memory import InMemoryStore as Theirs

    for store in (InMemoryStore(index=ASYNC_INDEX), Theirs(index=ASYNC_INDEX)):
        with pytest.raises(ValueError, match="async"):
            store.put(("m",), "k", {"text": "tea"})
        store.put(("m",), "k", {"text": "tea"}, index=False)
        with pytest.raises(ValueError, match="async"):
            store.search(("m",), query="tea")


@STORES
async def test_bad_namespaces_are_refused(
    make: Callable[..., Awaitable[Any]], protocol_redis: Callable[[], ArqRedis],
) -> None:
    store = await make(protocol_redis)
    for namespace in [(), ("a.b",), ("langgraph", "x"), ("",)]:
        with pytest.raises(InvalidNamespaceError):
            await store.aput(namespace, "k", {"v": 1})


@STORES
async def test_items_expire_after_their_ttl(
    make: Callable[..., Awaitable[Any]], protocol_redis: Callable[[], ArqRedis],
) -> None:
    store = await make(protocol_redis)
    await store.aput(("t",), "short", {"v": 1}, ttl=0.001)  # 60 ms
    await store.aput(("t",), "kept", {"v": 2})
    assert await store.aget(("t",), "short") is not None
    deadline = time.monotonic() + 10
    while await store.aget(("t",), "short", refresh_ttl=False) is not None:
        assert time.monotonic() < deadline, "the item never expired"
        await asyncio.sleep(0.02)
    assert [i.key for i in await store.asearch(("t",))] == ["kept"]


def test_redis_store_serves_sync_nodes_from_their_threads(
    protocol_redis: Callable[[], ArqRedis],
) -> None:
    async def main() -> list[Any]:
        store = RedisStore(protocol_redis(), index=ASYNC_INDEX)

        def sync_node() -> Any:
            store.put(("s",), "k", {"v": 1, "text": "tea"})
            store.put(("s",), "j", {"v": 2, "text": "rust"})
            # (an async embedding too: the store embeds on its event loop)
            return [i.key for i in store.search(("s",), query="rust")]

        keys = await asyncio.to_thread(sync_node)
        with pytest.raises(RuntimeError, match="async API"):
            store.get(("s",), "k")
        return keys

    assert asyncio.run(main()) == ["j", "k"]
