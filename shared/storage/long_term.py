"""`RedisStore`: the long-term memory store every worker of a cluster shares (LangGraph's
`BaseStore` API, the rules of `arqgraph.store.base`), on plain `redis-server`.

Each namespace is one hash (key -> the item, msgpack) and the set of namespaces one set
(`protocol.store_key`, `protocol.STORE_NAMESPACES_KEY`). A search reads the hashes of the
namespaces under its prefix and filters and ranks their items in the process, vector
similarity included: it costs a read of every item under the prefix, so it suits the
thousands of memories of a user or an app, not millions (which want a vector database).
Expired items are dropped when read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core import codec
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
from arqgraph.store.embedding import aput_vectors, aquery_vector


class RedisStore(BaseStore):
    """A store in Redis. Its sync API is for sync nodes, which run in worker threads: it waits
    for the event loop the store was made on. Both APIs embed with the index's async API, so
    an async `embed` function serves sync nodes too."""

    supports_ttl = True

    def __init__(self, redis: ArqRedis, *, index: IndexConfig | None = None,
                 ttl: TTLConfig | None = None) -> None:
        self.redis: Any = redis  # (redis-py's hints do not tell async from sync calls)
        self.index_config = index
        self.ttl_config = ttl
        self.loop = asyncio.get_event_loop()

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("a RedisStore's sync API cannot run on its event loop: use the "
                               "async API (await store.aget(...)) in async nodes")
        return asyncio.run_coroutine_threadsafe(self.abatch(list(ops)), self.loop).result()

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return [await self._one(op) for op in ops]

    async def _one(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            stored = await self._live(op.namespace, op.key, op.refresh_ttl)
            return stored.item(op.namespace, op.key) if stored else None
        if isinstance(op, PutOp):
            await self._put(op)
            return None
        if isinstance(op, SearchOp):
            found = []
            for ns in await self._namespaces():
                if ns[:len(op.namespace_prefix)] != op.namespace_prefix:
                    continue
                for raw_key, blob in (await self.redis.hgetall(protocol.store_key(ns))).items():
                    stored = await self._fresh(ns, raw_key.decode(), _decode(blob),
                                               op.refresh_ttl)
                    if stored is not None and matches(stored.value, op.filter):
                        found.append((ns, raw_key.decode(), stored))
            found.sort(key=lambda f: f[2].created_at)  # (a hash and a set have no order)
            return ranked(found, await aquery_vector(self.index_config, op.query),
                          op.limit, op.offset)
        if isinstance(op, ListNamespacesOp):
            return namespaces_page(await self._namespaces(), op)
        raise TypeError(f"unknown store operation {op!r}")

    async def _namespaces(self) -> list[tuple[str, ...]]:
        members = await self.redis.smembers(protocol.STORE_NAMESPACES_KEY)
        return [tuple(json.loads(m)) for m in members]

    async def _live(self, namespace: tuple[str, ...], key: str, refresh: bool
                    ) -> Stored | None:
        blob = await self.redis.hget(protocol.store_key(namespace), key)
        return await self._fresh(namespace, key, _decode(blob), refresh) if blob else None

    async def _fresh(self, namespace: tuple[str, ...], key: str, stored: Stored,
                     refresh: bool) -> Stored | None:
        """The item unless it expired (then it is deleted); its expiry pushed back on a read
        that refreshes it."""
        if stored.expires_at is not None and stored.expires_at <= time.time():
            await self.redis.hdel(protocol.store_key(namespace), key)
            return None
        if refresh and stored.ttl is not None:
            stored.expires_at = time.time() + stored.ttl * 60
            await self.redis.hset(protocol.store_key(namespace), key, _encode(stored))
        return stored

    async def _put(self, op: PutOp) -> None:
        key = protocol.store_key(op.namespace)
        if op.value is None:
            await self.redis.hdel(key, op.key)
            if not await self.redis.exists(key):
                await self.redis.srem(protocol.STORE_NAMESPACES_KEY, json.dumps(op.namespace))
            return
        codec.pack_values(op.value, where=f"store item {op.namespace}/{op.key}")
        earlier = await self.redis.hget(key, op.key)
        stored = stored_for(op, _decode(earlier).created_at if earlier else None,
                            await aput_vectors(op, self.index_config))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, op.key, _encode(stored))
            pipe.sadd(protocol.STORE_NAMESPACES_KEY, json.dumps(op.namespace))
            await pipe.execute()


def _encode(stored: Stored) -> bytes:
    return codec.packb({"value": stored.value, "created_at": stored.created_at.isoformat(),
                        "updated_at": stored.updated_at.isoformat(),
                        "expires_at": stored.expires_at, "ttl": stored.ttl,
                        "vectors": stored.vectors})


def _decode(blob: bytes) -> Stored:
    data = codec.unpackb(blob)
    return Stored(value=data["value"], created_at=datetime.fromisoformat(data["created_at"]),
                  updated_at=datetime.fromisoformat(data["updated_at"]),
                  expires_at=data["expires_at"], ttl=data["ttl"], vectors=data["vectors"])
