"""Heartbeats: which orchestrators and workers are alive, so that readiness can be waited for
(`arqgraph up`, `Client.submit`), a queue without workers can be reported instead of hanging
silently, and `arqgraph workers`/`graphs`/`health` can show the pool."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import Literal

import pydantic
from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.errors import SerializationError
from arqgraph.protocol import Heartbeat

log = logging.getLogger("arqgraph.presence")

Role = Literal["worker", "orchestrator"]
_KEYS: dict[Role, str] = {"worker": protocol.WORKERS_KEY,
                          "orchestrator": protocol.ORCHESTRATORS_KEY}


def process_id(obj: object) -> str:
    """A name for one serving object of this process: host, pid and a tag (the embedded
    default runs an orchestrator and a worker in one process)."""
    return f"{socket.gethostname()}-{os.getpid()}-{id(obj) & 0xFFFFFF:x}"


def new_heartbeat(ident: str, queues: Sequence[str], graphs: Sequence[str],
                  concurrency: int = 0) -> Heartbeat:
    now = time.time()
    return Heartbeat(id=ident, host=socket.gethostname(), pid=os.getpid(), queues=list(queues),
                     graphs=list(graphs), concurrency=concurrency, started=now, seen=now)


class Presence:
    """Reads and writes the heartbeats of one role."""

    def __init__(self, redis: ArqRedis, role: Role) -> None:
        self.redis = redis
        self.key = _KEYS[role]

    async def beat(self, beat: Heartbeat) -> None:
        beat.seen = time.time()
        await self.redis.hset(self.key, beat.id, protocol.encode_heartbeat(beat))  # type: ignore[arg-type,misc]

    async def leave(self, ident: str) -> None:
        await self.redis.hdel(self.key, ident)  # type: ignore[misc]

    async def live(self) -> list[Heartbeat]:
        """The heartbeats that are not stale (`Heartbeat.stale_after`), oldest process first;
        stale ones (a process killed -9) are deleted."""
        now = time.time()
        live: list[Heartbeat] = []
        dead: list[bytes] = []
        raw: dict[bytes, bytes] = await self.redis.hgetall(self.key)  # type: ignore[misc]
        for ident, data in raw.items():
            try:
                beat = protocol.decode_heartbeat(data)
            except (pydantic.ValidationError, SerializationError):
                log.warning("dropping an unreadable heartbeat %r", ident)
                dead.append(ident)
                continue
            if now - beat.seen > beat.stale_after:
                dead.append(ident)
            else:
                live.append(beat)
        if dead:
            await self.redis.hdel(self.key, *dead)  # type: ignore[arg-type,misc]
        return sorted(live, key=lambda b: (b.started, b.id))


async def live_queues(redis: ArqRedis) -> set[str]:
    """The queues at least one live worker listens on."""
    return {q for beat in await Presence(redis, "worker").live() for q in beat.queues}
