"""What a run tells its followers, and the notices that wake processes, over the keys of
`arqgraph.protocol`: a run's event stream (values, updates, custom, end) read by producers; the
orchestrators' inbox of notes (a run submitted, a step done, a cancel); the ends lists that tell
a producer its runs have ended."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core import codec
from arqgraph.errors import EventsDroppedError, RunNotFoundError
from arqgraph.protocol import EventMode, InboxNote
from arqgraph.storage import blobs
from arqgraph.storage.batch import Batch
from arqgraph.storage.connection import RETRYABLE, Backoff
from arqgraph.storage.dead_letters import readable_ids, set_aside

log = logging.getLogger("arqgraph.events")

ENDS_KEPT = 86_400  # seconds a client's list of ended runs outlives its last entry
READ_BATCH = 500  # events read per round trip (fewer than protocol.EVENTS_KEPT)


def _entry(raw: str | bytes) -> tuple[int, int]:
    ms, _, seq = (raw.encode() if isinstance(raw, str) else raw).partition(b"-")
    return int(ms), int(seq or 0)


class Cursor:
    """Where a reader is in each run's stream it follows: the last entry it took, how many it
    took, and how deep the run is below the one the reader began with."""

    def __init__(self) -> None:
        self.last: dict[str, str | bytes] = {}
        self.taken: dict[str, int] = {}
        self.depth: dict[str, int] = {}

    def follow(self, run_id: str, depth: int = 0) -> None:
        self.last[run_id], self.taken[run_id], self.depth[run_id] = "0-0", 0, depth

    def took(self, run_id: str, entry_id: bytes) -> None:
        if run_id in self.last:
            self.last[run_id], self.taken[run_id] = entry_id, self.taken[run_id] + 1

    def drop(self, run_id: str) -> None:
        for kept in (self.last, self.taken, self.depth):
            kept.pop(run_id, None)


class Events:
    """Events of runs and notices to orchestrators and producers, in one Redis."""

    def __init__(self, redis: ArqRedis, batch: Batch) -> None:
        self.redis = redis
        self._batch = batch  # the store's: its notices go with the other calls of the moment

    async def emit(self, run_id: str, mode: EventMode, payload: Any) -> None:
        """Append an event to the run's stream. A task's start ("tasks") keeps the large values
        of its input apart, in its thread's blobs, as the events the scripts add do (see
        `protocol.event_args`): a 50 MB state is not copied into each task's event."""
        kept: dict[str, bytes] = {}
        if mode in ("tasks", "checkpoints"):
            payload = protocol.split_event(mode, payload, kept)
        if kept:
            await blobs.put(self.redis, protocol.tag_of(run_id), kept, run_id, kept)
        fields: dict[Any, Any] = protocol.encode_event(mode, payload)
        if mode == "child" and isinstance(payload, dict) and payload.get("run_id"):
            # (the stream is trimmed: a cancel must still find every child)
            await self.redis.sadd(protocol.children_key(run_id), str(payload["run_id"]))  # type: ignore[misc]
        await self.redis.xadd(protocol.events_key(run_id), fields,
                              maxlen=protocol.EVENTS_KEPT, approximate=True)

    async def read(self, run_id: str, block_ms: int = 1000) -> AsyncIterator[tuple[str, Any]]:
        """Every event of the run from its first, waiting for new ones, until its end event.
        (`next_events` says what it rides out and raises.)"""
        cursor = Cursor()
        cursor.follow(run_id)
        while True:
            for _run, entry_id, event in await self.next_events(cursor, block_ms):
                cursor.took(run_id, entry_id)
                if event is None:
                    continue
                yield event
                if event[0] == "end":
                    return

    async def next_events(
        self, cursor: Cursor, block_ms: int = 1000
    ) -> list[tuple[str, bytes, tuple[str, Any] | None]]:
        """The next events of the runs `cursor` follows, one read for all of them (waiting
        up to `block_ms` for one), as (run id, entry id, event or None for an unreadable one
        set aside), in the order they were written: by entry id, a deeper run first within a
        millisecond (a child's events come before its parent's note of them). Entries past
        the end of a stream that filled its batch are left for the next read. The caller
        marks what it took (`Cursor.took`).

        Rides out Redis outages: retries with backoff, from where the cursor is, so no event
        is lost or yielded twice. Raises RunNotFoundError once a run's record is gone
        (expired, deleted) without an end: it will not come; and EventsDroppedError when the
        reader fell so far behind that events it had not read were trimmed (a stream keeps
        the last `protocol.EVENTS_KEPT`).
        """
        backoff = Backoff()
        while True:
            streams = {run: protocol.events_key(run) for run in cursor.last}
            keys = {key: run for run, key in streams.items()}
            try:
                reply = await self.redis.xread(
                    {key: cursor.last[run] for key, run in keys.items()},
                    count=READ_BATCH, block=block_ms)
                for key, entries in reply or []:
                    run = keys[key.decode() if isinstance(key, bytes) else key]
                    if len(entries) == READ_BATCH:  # (a shorter one ends the stream)
                        await self._check_not_trimmed(run, key, cursor.last[run],
                                                      cursor.taken[run])
            except RETRYABLE as exc:
                log.warning("lost Redis reading the events of runs %s (%s); retrying in %.1fs",
                            ", ".join(cursor.last), exc, backoff.delay)
                await backoff.wait()
                continue
            if reply:
                break
            for run in cursor.last:
                if not await self.redis.exists(protocol.run_key(run)):
                    raise RunNotFoundError(f"run {run} is gone: its record expired or was "
                                           "deleted before its end was read")
            return []
        found: list[tuple[tuple[int, int], int, str, bytes, dict[bytes, bytes]]] = []
        cutoff = None  # the earliest last entry of a full batch: later ones wait
        for key, entries in reply:
            run = keys[key.decode() if isinstance(key, bytes) else key]
            if len(entries) == READ_BATCH:
                end = _entry(entries[-1][0])
                cutoff = end if cutoff is None else min(cutoff, end)
            found += [(_entry(i), -cursor.depth[run], run, i, fields) for i, fields in entries]
        # by the millisecond of each entry (a stream's sequence numbers within one are its
        # own), a deeper run first within it, then each stream's own order
        found.sort(key=lambda f: (f[0][0], f[1], f[0][1]))
        events = []
        for at, _, run, entry_id, fields in found:
            if cutoff is not None and at[0] > cutoff[0]:
                break
            event = await self._decoded(streams[run], entry_id, fields)
            if event is not None:  # (its large values are kept apart: see event_args)
                mode, payload = event
                event = mode, await blobs.resolved_event(self.redis, protocol.tag_of(run),
                                                         mode, payload)
            events.append((run, entry_id, event))
        return events

    async def _check_not_trimmed(self, run_id: str, key: str, last: Any, read: int) -> None:
        """Raise EventsDroppedError if events after `last` (the reader has taken `read`) were
        trimmed. Asked only when a read fills its batch: a shorter one reached the end of the
        stream, and a stream ever trimmed holds at least EVENTS_KEPT (> READ_BATCH) events, so
        a reader that gets fewer, first read included, was not overtaken by the trim."""
        info = await self.redis.xinfo_stream(key)
        added, length = int(info.get("entries-added") or 0), int(info.get("length") or 0)
        if added <= protocol.EVENTS_KEPT:
            return  # never trimmed
        first = info.get("recorded-first-entry-id") or b"0-0"
        if _entry(first) > _entry(last) and added - read > length:
            raise EventsDroppedError(
                f"the reader of run {run_id}'s events fell behind: events it had not read "
                f"were dropped (a run's stream keeps its last {protocol.EVENTS_KEPT:,} events, "
                "so that a slow or vanished reader cannot fill Redis). Read the stream while "
                "the run goes, or read its outcome and state instead.")

    async def children(self, run_id: str) -> list[str]:
        """The child runs (subgraphs) the run's tasks started: those of its set of children,
        and those its "child" events tell (runs started before the set was kept). Reads the
        run's whole stream: for a cancel or a failure, not for every step."""
        found = [m.decode() for m in await self.redis.smembers(protocol.children_key(run_id))]  # type: ignore[misc]
        key = protocol.events_key(run_id)
        for entry_id, fields in await self.redis.xrange(key):
            mode, payload = await self._decoded(key, entry_id, fields) or ("", {})
            if mode == "child" and isinstance(payload, dict) and payload.get("run_id"):
                found.append(str(payload["run_id"]))
        return list(dict.fromkeys(found))

    async def end_event(self, run_id: str) -> dict[str, Any] | None:
        """The run's end event, if it has ended (it is the last event of its stream)."""
        key = protocol.events_key(run_id)
        # (batched: the ends a waiter is told together are read in one round trip)
        last = await self._batch.command("XREVRANGE", key, "+", "-", "COUNT", 1)
        if not last:
            return None
        mode, payload = await self._decoded(key, *last[0]) or ("", {})
        if mode != "end":
            return None
        return dict(await blobs.resolved_event(self.redis, protocol.tag_of(run_id), mode, payload))

    async def _decoded(
        self, key: str, entry_id: bytes, fields: dict[bytes, bytes]
    ) -> tuple[str, Any] | None:
        """An event; None for one that cannot be read, which is set aside and deleted from its
        stream (a garbage event must not keep every reader of the run from its end)."""
        try:
            mode, payload = protocol.decode_event(fields)
            if mode == "end" and not isinstance(payload, dict):
                raise TypeError(f"an end event carries a dict, not a {type(payload).__name__}")
            return mode, payload
        except Exception as exc:
            where = f"{key} entry {entry_id.decode(errors='backslashreplace')}"
            if await self.redis.xdel(key, entry_id):  # (once, whoever reads it first)
                await set_aside(self.redis, where, f"an unreadable event: {exc!r}",
                                codec.packb({k.decode(errors="backslashreplace"): v
                                             for k, v in fields.items()}))
            return None

    async def wait_ends(self, waiter: str, timeout: float) -> list[str]:
        """Ids of runs that ended, told to `waiter`: those there, or the first within
        `timeout` seconds."""
        popped = await self.redis.blmpop(timeout, 1, protocol.ends_key(waiter),  # type: ignore[arg-type]
                                         direction="LEFT", count=1000)
        if not popped:
            return []
        return await readable_ids(self.redis, popped[1], protocol.ends_key(waiter), popped=True)

    async def notify(self, graph: str, note: InboxNote) -> None:
        await self._batch.command("LPUSH", protocol.inbox_key(graph), protocol.encode_note(note))

    async def next_notes(self, graphs: Sequence[str], timeout: float) -> list[InboxNote]:
        """The notes waiting in the graphs' inboxes, oldest first, up to a hundred: those there,
        or the first to come within `timeout` seconds. Unreadable ones are set aside
        (a garbage notification must not stop the orchestrator)."""
        keys = [protocol.inbox_key(g) for g in graphs]
        reply = await self.redis.blmpop(timeout, len(keys), *keys,  # type: ignore[arg-type]
                                        direction="RIGHT", count=100)
        notes = []
        for raw in reply[1] if reply else []:
            try:
                notes.append(protocol.decode_note(raw))
            except Exception as exc:
                await set_aside(self.redis, reply[0].decode(errors="backslashreplace"),
                                f"an unreadable notification: {exc}", raw)
        return notes
