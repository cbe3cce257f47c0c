"""The large values of a thread's checkpoints and events, kept once each in its blobs hash
(see `arqgraph.protocol.blobs`): written before the commit that refers to them, read back
with the checkpoints and events that refer to them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core.pregel import TaskOutcome
from arqgraph.errors import CorruptDataError, ErrorInfo
from arqgraph.protocol import SavedCheckpoint


async def put(redis: ArqRedis, tag: str, blobs: Mapping[str, bytes], run_id: str = "",
              event_refs: Collection[str] = ()) -> None:
    """Keep these blobs of the thread, sending only those it has not kept yet: a value that
    stays the same from step to step (its id is its digest) crosses the wire once.
    `event_refs`: those that events of run `run_id` refer to, noted for as long as its events
    are kept (a thread whose history is pruned keeps them: see `arqgraph.storage.history`)."""
    if not blobs:
        return
    key = protocol.blobs_key(tag)
    ids = list(blobs)
    async with redis.pipeline(transaction=False) as pipe:
        for blob_id in ids:
            pipe.hstrlen(key, blob_id)
        if event_refs and run_id:
            pipe.sadd(protocol.event_blobs_key(run_id), *event_refs)
            pipe.sadd(protocol.blob_runs_key(tag), run_id)
        kept = (await pipe.execute())[:len(ids)]
    missing = {i: blobs[i] for i, n in zip(ids, kept, strict=True) if not n}
    if missing:
        await redis.hset(key, mapping=missing)  # type: ignore[arg-type,misc]


async def fetch(redis: ArqRedis, tag: str, ids: set[str]) -> dict[str, bytes | None]:
    """The thread's blobs of these ids (None for one that is gone)."""
    order = sorted(ids)
    got = await redis.hmget(protocol.blobs_key(tag), order)  # type: ignore[arg-type,misc]
    return dict(zip(order, got, strict=True))


async def resolved(redis: ArqRedis, tag: str, saved: SavedCheckpoint) -> SavedCheckpoint:
    """The checkpoint with the large values it refers to read back (one read, if any)."""
    ids = protocol.saved_refs(saved)
    return protocol.with_blobs(saved, await fetch(redis, tag, ids)) if ids else saved


async def resolved_event(redis: ArqRedis, tag: str, mode: str, payload: Any) -> Any:
    """An event's payload with the large values it refers to read back."""
    ids = protocol.event_refs(mode, payload)
    return protocol.event_with_blobs(mode, payload, await fetch(redis, tag, ids)) if ids else payload


async def resolved_outcomes(redis: ArqRedis, tag: str, outcomes: Mapping[str, TaskOutcome]
                            ) -> dict[str, TaskOutcome]:
    """Outcomes with the large values they refer to read back (one read for all, if any); one
    whose value is gone fails its task with CorruptDataError (and so its run)."""
    ids = set().union(*(protocol.outcome_refs(o) for o in outcomes.values()))
    if not ids:
        return dict(outcomes)
    got = await fetch(redis, tag, ids)
    out = {}
    for key, outcome in outcomes.items():
        try:
            out[key] = protocol.outcome_with_blobs(outcome, got)
        except CorruptDataError as exc:
            error = CorruptDataError(f"the outcome of task {outcome.task_id}: {exc}")
            out[key] = TaskOutcome(outcome.task_id, outcome.node, error=ErrorInfo.of(error, ""))
    return out
