"""The task calls of the Functional API, over the keys of `arqgraph.protocol`: a `@task` called
inside an `@entrypoint` runs as a job of its own; its arguments and result are kept in the
writes of the entrypoint's step (`fnargs:<call>`, `fn:<call>`), so that a call made again (the
entrypoint resumed, or retried) finds its result instead of running twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core import codec
from arqgraph.protocol import EventMode, RunRecord
from arqgraph.storage.batch import Batch

if TYPE_CHECKING:
    from arqgraph.storage.queue import JobQueue
    from arqgraph.storage.runs import Claim

REDRIVE_EVERY = 5  # checks (a second apart at most) between two re-enqueues of a waited call


class TaskCalls:
    """Task calls' arguments, results and jobs in one Redis."""

    def __init__(self, redis: ArqRedis, batch: Batch) -> None:
        self.redis = redis
        self._post_call = batch.script(protocol.POST_CALL_SCRIPT)

    async def result(self, tag: str, checkpoint_id: str, call_id: str) -> dict[str, Any] | None:
        """A task call's saved result ({"value": ...} or {"error": ...}), if it has one."""
        raw = await self.redis.hget(protocol.writes_key(tag, checkpoint_id), f"fn:{call_id}")
        return dict(codec.unpackb(raw)) if raw else None

    async def look(self, tag: str, checkpoint_id: str, call_id: str, made_as: str
                   ) -> tuple[dict[str, Any] | None, int]:
        """The saved result of a call's job (as `result`) and how many times the call it was
        made as was cancelled: made again after n cancels, it runs as `<made_as>^n`."""
        raw, cancels = await self.redis.hmget(  # type: ignore[misc]
            protocol.writes_key(tag, checkpoint_id), [f"fn:{call_id}", f"fncancel:{made_as}"])
        return (dict(codec.unpackb(raw)) if raw else None), int(cancels or 0)

    async def cancel(self, run_id: str, checkpoint_id: str, call_id: str, job_task: str) -> None:
        """Cancel a call (`job_task`: the task id of its job): its job does not start if it
        has not, and the worker running it hears it on the cancel channel."""
        tag = protocol.tag_of(run_id)
        await self.redis.hincrby(protocol.writes_key(tag, checkpoint_id), f"fncancel:{call_id}")
        await self.redis.publish(protocol.CANCEL_CHANNEL,
                                 protocol.job_id(run_id, checkpoint_id, job_task))

    async def arguments(self, tag: str, checkpoint_id: str, call_id: str) -> Any:
        raw = await self.redis.hget(protocol.writes_key(tag, checkpoint_id), f"fnargs:{call_id}")
        return codec.unpackb(raw) if raw else None

    async def start(
        self, record: RunRecord, checkpoint_id: str, call_id: str, arguments: dict[str, Any],
        fingerprint: str, jobs: JobQueue,
    ) -> None:
        """Save a task call's arguments, then enqueue it as a job on `jobs` (both no-ops if
        done before)."""
        blob = codec.pack_values(arguments, where=f"arguments of task {arguments['task']!r},")
        writes = protocol.writes_key(record.tag, checkpoint_id)
        await self.redis.hsetnx(writes, f"fnargs:{call_id}", blob)  # type: ignore[arg-type]
        await jobs.enqueue_call(record, checkpoint_id, call_id, fingerprint)

    async def wait(
        self, tag: str, checkpoint_id: str, call_id: str,
        again: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """Wait for a task call's result: woken by its done list, checked now and then anyway.
        `again`, every REDRIVE_EVERY checks: the call's `start` once more, which enqueues its
        job again if it ended without a result (its worker took it for stale, or its result
        was lost); a no-op while the job is queued or running."""
        done = protocol.call_done_key(tag, checkpoint_id, call_id)
        checks = 0
        while True:
            saved = await self.result(tag, checkpoint_id, call_id)
            if saved is not None:
                return saved
            checks += 1
            if again is not None and checks % REDRIVE_EVERY == 0:
                await again()
            await self.redis.brpop([done], timeout=1)  # type: ignore[arg-type]

    async def post(
        self, run_id: str, checkpoint_id: str, call_id: str, result: dict[str, Any],
        claim: Claim, events: Sequence[tuple[EventMode, Any]] = (),
    ) -> int:
        """Record a task call's result (fenced by the attempt, as outcomes are)."""
        tag = protocol.tag_of(run_id)
        args: list[Any] = [call_id, codec.pack_values(result, where="task result"), claim.attempt]
        args += protocol.event_args(events)
        keys = [protocol.writes_key(tag, checkpoint_id), protocol.events_key(run_id),
                protocol.claims_key(tag, checkpoint_id),
                protocol.call_done_key(tag, checkpoint_id, call_id)]
        return int(await self._post_call(keys=keys, args=args))
