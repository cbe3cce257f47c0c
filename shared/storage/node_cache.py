"""The node cache of a cluster: one in Redis that every worker shares (`protocol.cache_key`),
with each entry's time to live as the key's expiry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from arq.connections import ArqRedis

from arqgraph import protocol

Namespace = tuple[str, ...]
FullKey = tuple[Namespace, str]


class RedisCache:
    """The methods of `arqgraph.cache.base.BaseCache` a worker calls, over Redis."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, bytes]:
        if not keys:
            return {}
        values = await self.redis.mget([protocol.cache_key(ns, key) for ns, key in keys])
        return {full: value for full, value in zip(keys, values, strict=True) if value is not None}

    async def aset(self, pairs: Mapping[FullKey, tuple[bytes, int | None]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for (ns, key), (value, ttl) in pairs.items():
                pipe.set(protocol.cache_key(ns, key), value, ex=ttl)
            await pipe.execute()

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        prefixes = [protocol.cache_prefix(ns) for ns in namespaces] if namespaces is not None \
            else [protocol.cache_prefix()]
        for prefix in prefixes:
            batch: list[bytes] = []
            async for key in self.redis.scan_iter(match=f"{prefix}*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await self.redis.delete(*batch)
                    batch = []
            if batch:
                await self.redis.delete(*batch)
