"""How full Redis is, for the maxmemory guard, asked in a way this Redis user is allowed.

Redis refuses writes only once it is over its maxmemory, when every run is stuck; so large
updates are checked against the room left before they are written (`RunStore.post_outcome`).
INFO is the usual way to ask, but a Redis user restricted by an ACL may not run it: then
CONFIG GET maxmemory with MEMORY STATS. A user allowed neither cannot be guarded: every process
says so as it connects, and writes Redis refuses for lack of memory fail the node that made
them (RedisFullError, retried until Redis has room) instead of wedging the run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from arqgraph import protocol
from arqgraph.core.pregel import TaskOutcome
from arqgraph.errors import UpdateTooLargeError

log = logging.getLogger("arqgraph.memory")


class RedisMemory:
    """maxmemory and the memory in use, asked the first way this user may (remembered)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._ways: list[Callable[[], Awaitable[tuple[int, int]]]] = [
            self._from_info, self._from_config_and_stats]

    async def usage(self) -> tuple[int, int] | None:
        """(maxmemory, bytes in use; maxmemory 0: no limit), or None when this user may ask
        neither way (or the server answers neither: the in-memory Redis)."""
        while self._ways:
            try:
                return await self._ways[0]()
            except ResponseError:  # NOPERM, or an unknown command: not asked again
                self._ways.pop(0)
        return None

    async def check_room(self, outcome: TaskOutcome, size: int) -> None:
        """Refuse a large update (`size` bytes) that would take Redis past its maxmemory: Redis
        itself only refuses writes once it is over the limit, by which time every run is stuck."""
        usage = await self.usage()
        if usage is None:  # not allowed to ask (said at start-up), or the in-memory Redis
            return
        limit, used = usage
        if limit and used + 2 * size > limit:  # the update, then the state it lands in
            raise UpdateTooLargeError(
                f"the update of node {outcome.node!r} is {size:,} bytes "
                f"({protocol.describe_sizes(outcome)}) but Redis has only {max(limit - used, 0):,} "
                f"of its maxmemory {limit:,} bytes left; keep large data outside the state"
            )

    async def _from_info(self) -> tuple[int, int]:
        info = await self.redis.info("memory")
        return int(info.get("maxmemory", 0)), int(info.get("used_memory", 0))

    async def _from_config_and_stats(self) -> tuple[int, int]:
        limit = int((await self.redis.config_get("maxmemory")).get("maxmemory", 0))
        stats = await self.redis.memory_stats()
        return limit, int(stats["total.allocated"])


async def say_if_unguarded(redis: Redis, what: str) -> bool:
    """Warn, at start-up, when the maxmemory guard cannot work for this Redis user; whether
    it can."""
    if await RedisMemory(redis).usage() is not None:
        return True
    log.warning("%s: this Redis user may run neither INFO nor CONFIG GET + MEMORY STATS, so "
                "large updates cannot be checked against maxmemory; when Redis is full, the "
                "writes it refuses fail their nodes (retried until it has room). Allow INFO "
                "(or CONFIG GET and MEMORY STATS) to guard it.", what)
    return False
