"""Cluster-wide limits of nodes, over the keys of `arqgraph.protocol`: at most N executions of a
node in flight (`concurrency=`, slots leased to jobs and renewed by the worker's lease keeper),
and at most one start per interval (`rate_limit=`, start times reserved in Redis, whose clock is
the same for every worker)."""

from __future__ import annotations

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.storage.batch import Batch


class NodeLimits:
    """Slots and start times of limited nodes, shared by every worker of one Redis."""

    def __init__(self, redis: ArqRedis, batch: Batch) -> None:
        self.redis = redis
        self._acquire_slot = batch.script(protocol.ACQUIRE_SLOT_SCRIPT)
        self._rate = batch.script(protocol.RATE_SCRIPT)

    async def acquire_slot(self, graph: str, node: str, job: str, limit: int, lease: float) -> bool:
        """Take one of a node's `limit` slots for `job` (renewed by the worker's lease keeper)."""
        keys = [protocol.slots_key(graph, node)]
        return bool(await self._acquire_slot(keys=keys, args=[job, limit, int(lease * 1000)]))

    async def release_slot(self, graph: str, node: str, job: str) -> None:
        await self.release(protocol.slots_key(graph, node), job)

    async def release(self, slots_key: str, job: str) -> None:
        """Free the slot `job` holds in the slots at `slots_key`."""
        await self.redis.zrem(slots_key, job)

    async def rate_wait(self, graph: str, node: str, job: str, interval: float) -> float:
        """Seconds `job` must wait before it may start a call of a rate-limited node (its start
        time is reserved meanwhile); 0 when it may start now."""
        keys = [protocol.rate_key(graph, node)]
        return int(await self._rate(keys=keys, args=[job, f"{interval * 1000:.3f}"])) / 1000
