"""What a server takes on for a run that must be done even if that server stops: call the
run's webhook when it ends, start a delayed run when it is due, cancel a run whose client left,
delete the thread of a threadless cron's fire once its run ends.

Each duty is a record in the cluster's Redis (`protocol.SERVED_DUTIES_KEY`), scored by when
another server may take it over: its due time (a delayed run's start), or the end of the lease
of the server doing it, which renews its leases every second while alive. Every server looks
twice a second for duties whose time has come; the first to set the claim key of that moment
takes one over (so one server does it, however many look), holds it under its own lease and
does it; when done it deletes the record. A server killed while holding one leaves it to
another once its lease lapses. A duty that is done twice (its server killed after doing it but
before deleting it) is the price of never losing one: a webhook's receiver may be called again
with the same run in that case.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from arqgraph import protocol
from arqgraph.core import codec

log = logging.getLogger("arqgraph.server")
LEASE = 10.0  # seconds a duty stays with a server that stopped renewing it (the default)
RENEW_EVERY = 1.0  # seconds between a server's renewals of its leases, at most
CLAIMS_PER_LOOK = 50


@dataclass
class Duty:
    kind: str  # "webhook", "delayed", "watch" or "drop"
    run_id: str
    doc: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.run_id}"


Work = Callable[[Duty], Awaitable[None]]


class Duties:
    """This server's view of the duties: add one, hold it under a lease, take over those that
    fell due, and finish them."""

    def __init__(self, redis: Any, holder: str | None = None, lease: float = LEASE) -> None:
        self.redis = redis
        self.lease = lease  # (ARQGRAPH_DUTY_LEASE: shorter, a killed server's duties move sooner)
        self.renew_every = min(RENEW_EVERY, lease / 3)
        # (this server process, as an operator finds it: host, pid, and a token of its own)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held: set[str] = set()
        self._renewed = 0.0

    async def add(self, duty: Duty, due: float | None = None) -> None:
        """Record `duty`: held by this server from now (`due` None), or due at `due` (epoch
        seconds) for whichever server looks first."""
        score = time.time() + self.lease if due is None else due
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(protocol.served_duty_key(duty.id), mapping={
                "doc": codec.packb({"kind": duty.kind, "run_id": duty.run_id, "doc": duty.doc}),
                "holder": self.holder if due is None else ""})
            pipe.zadd(protocol.SERVED_DUTIES_KEY, {duty.id: score})
            await pipe.execute()
        if due is None:
            self.held.add(duty.id)

    async def hold(self, duty_id: str) -> bool:
        """Take over a duty that exists (another server's, alive or not): False if it is gone."""
        key = protocol.served_duty_key(duty_id)
        if not await self.redis.exists(key):
            return False
        await self.redis.hset(key, "holder", self.holder)
        await self.redis.zadd(protocol.SERVED_DUTIES_KEY, {duty_id: time.time() + self.lease},
                              xx=True)
        self.held.add(duty_id)
        return True

    async def get(self, duty_id: str) -> Duty | None:
        raw = await self.redis.hget(protocol.served_duty_key(duty_id), "doc")
        if raw is None:
            return None
        data = codec.unpackb(raw)
        return Duty(data["kind"], data["run_id"], data["doc"])

    async def finish(self, duty_id: str) -> None:
        """The duty is done (or no longer wanted): nobody does it again."""
        self.held.discard(duty_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(protocol.SERVED_DUTIES_KEY, duty_id)
            pipe.delete(protocol.served_duty_key(duty_id))
            await pipe.execute()

    async def hand_over(self) -> None:
        """This server stops: its duties are due now, for another to take over at once."""
        if self.held:
            await self.redis.zadd(protocol.SERVED_DUTIES_KEY,
                                  dict.fromkeys(self.held, time.time()), xx=True)
            self.held.clear()

    async def renew(self, now: float) -> None:
        """Push back the leases of the duties this server holds (once a `renew_every`)."""
        if now - self._renewed < self.renew_every or not self.held:
            return
        self._renewed = now
        await self.redis.zadd(protocol.SERVED_DUTIES_KEY,
                              dict.fromkeys(self.held, now + self.lease), xx=True)

    async def claim_due(self, now: float) -> list[Duty]:
        """The duties whose time has come that this server took over (held from now)."""
        due = await self.redis.zrangebyscore(protocol.SERVED_DUTIES_KEY, "-inf", now,
                                             start=0, num=CLAIMS_PER_LOOK, withscores=True)
        taken = []
        for raw_id, score in due:
            duty_id = raw_id.decode()
            if not await self.redis.set(protocol.served_duty_claim_key(duty_id, float(score)),
                                        self.holder, nx=True, ex=max(1, int(self.lease * 6))):
                continue  # (another server took it)
            duty = await self.get(duty_id)
            if duty is None:  # (finished meanwhile)
                await self.redis.zrem(protocol.SERVED_DUTIES_KEY, duty_id)
                continue
            await self.hold(duty_id)
            taken.append(duty)
        return taken


async def duty_loop(duties: Duties, work: Work, spawn: Callable[[Any], None],
                    tick: float) -> None:
    """Renew this server's leases and take over due duties, doing each in a task of its own,
    while the server runs; a failed look is logged and tried again."""
    while True:
        try:
            now = time.time()
            await duties.renew(now)
            for duty in await duties.claim_due(now):
                spawn(done_after(duties, duty, work))
        except Exception:
            log.exception("looking at the duties failed; trying again")
        await asyncio.sleep(tick)


async def done_after(duties: Duties, duty: Duty, work: Work) -> None:
    """Do the duty, then finish it; if it fails it is logged and dropped (a webhook's receiver
    that refuses is not called again)."""
    try:
        await work(duty)  # (cancelled when this server stops: handed over, see `hand_over`)
    except Exception:
        log.exception("%s: failed", duty.id)
    await duties.finish(duty.id)
