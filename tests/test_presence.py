"""Heartbeats in Redis (the Redis layer, on the in-memory store and on fakeredis with the real
Lua): what readers count as alive."""

from __future__ import annotations

import time
from collections.abc import Callable

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.storage.presence import Presence, live_queues, new_heartbeat


async def test_live_heartbeats_skip_and_drop_stale_and_garbage_ones(
    protocol_redis: Callable[[], ArqRedis],
) -> None:
    redis = protocol_redis()
    workers = Presence(redis, "worker")
    alive = new_heartbeat("w-alive", ["q1"], ["g"], concurrency=4)
    stale = new_heartbeat("w-stale", ["q2"], ["g"])
    await workers.beat(alive)
    await workers.beat(stale)
    stale.seen = time.time() - protocol.HEARTBEAT_STALE - 1  # a worker killed -9 long ago
    await redis.hset(protocol.WORKERS_KEY, stale.id, protocol.encode_heartbeat(stale))
    await redis.hset(protocol.WORKERS_KEY, "w-garbage", b"\xc1 not msgpack")

    assert [b.id for b in await workers.live()] == ["w-alive"]
    assert await redis.hkeys(protocol.WORKERS_KEY) == [b"w-alive"]  # the others are dropped
    assert await live_queues(redis) == {"q1"}
    assert await Presence(redis, "orchestrator").live() == []  # roles apart

    await workers.leave("w-alive")  # a clean stop
    assert await workers.live() == [] and await live_queues(redis) == set()
    await redis.aclose()


async def test_an_idle_beat_is_live_as_long_as_it_promised(
    protocol_redis: Callable[[], ArqRedis],
) -> None:
    """An idle process beats every IDLE_HEARTBEAT_INTERVAL, and says so in its beat: readers
    count it alive that much longer, and no longer."""
    redis = protocol_redis()
    workers = Presence(redis, "worker")
    margin = protocol.HEARTBEAT_STALE - protocol.HEARTBEAT_INTERVAL
    idle = new_heartbeat("w-idle", ["q1"], ["g"])
    idle.every = protocol.IDLE_HEARTBEAT_INTERVAL
    busy = new_heartbeat("w-busy", ["q2"], ["g"])
    gone = new_heartbeat("w-gone", ["q3"], ["g"])
    gone.every = protocol.IDLE_HEARTBEAT_INTERVAL
    for beat, age in ((idle, protocol.IDLE_HEARTBEAT_INTERVAL + margin - 1),
                      (busy, protocol.HEARTBEAT_STALE - 1),
                      (gone, protocol.IDLE_HEARTBEAT_INTERVAL + margin + 1)):
        beat.seen = time.time() - age
        await redis.hset(protocol.WORKERS_KEY, beat.id, protocol.encode_heartbeat(beat))

    assert [b.id for b in await workers.live()] == ["w-idle", "w-busy"]
    assert await live_queues(redis) == {"q1", "q2"}
    await redis.aclose()
