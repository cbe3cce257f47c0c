"""The Redis operations every arqgraph process shares, over the keys of `shared.protocol`.

This is the only module that talks to Redis about runs; the orchestrator, the workers and the
producer client each call the few operations they need.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import msgpack
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    ResponseError,
    WatchError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared import codec, protocol
from shared.errors import ErrorInfo, SerializationError
from shared.pregel import Checkpoint, Task, TaskOutcome
from shared.protocol import EventMode, GraphInfo, InboxNote, RunRecord

log = logging.getLogger("arqgraph.store")

RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def lost_redis(exc: BaseException) -> bool:
    """Whether `exc` means the connection to Redis failed (worth retrying once it is back).

    Besides RETRYABLE: the WatchError redis-py raises instead when the connection fails while a
    transaction watches keys (arq watches keys to pick up and to enqueue jobs).
    """
    return isinstance(exc, RETRYABLE) or (
        isinstance(exc, WatchError) and isinstance(exc.__context__, RETRYABLE)
    )


def job_serializer(obj: Any) -> bytes:
    """arq jobs and job results as plain msgpack; anything else (arq stores a failed job's
    exception as its result) is written as its repr, never pickled."""
    return msgpack.packb(obj, use_bin_type=True, default=repr)


def job_deserializer(data: bytes) -> Any:
    """Jobs carry only strings and ints: read them as plain msgpack, no extension types, so a
    forged job cannot make a worker import or build anything."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:
        raise SerializationError(f"not a valid arqgraph job: {exc}") from None


async def connect(url: str, *, attempts: int | None = None, what: str = "arqgraph") -> ArqRedis:
    """Connect to Redis at `url`, retrying with backoff (and saying so) while it is unreachable."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 0
    delay, attempt = 0.2, 0
    while True:
        attempt += 1
        try:
            pool = await create_pool(
                settings, job_serializer=job_serializer, job_deserializer=job_deserializer
            )
            await pool.ping()
            return pool
        except (AuthenticationError, AuthenticationWrongNumberOfArgsError, ResponseError) as exc:
            raise ConnectionRefusedError(f"{what}: Redis at {_safe(url)} refused us: {exc}") from exc
        except RETRYABLE as exc:
            if attempts is not None and attempt >= attempts:
                raise
            log.warning(
                "%s: Redis at %s unreachable (%s); retrying in %.1fs", what, _safe(url), exc, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


class RunStore:
    """Run records, outcomes, events and notifications in one Redis."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis
        self._commit = redis.register_script(protocol.COMMIT_SCRIPT)
        self._post = redis.register_script(protocol.POST_OUTCOME_SCRIPT)

    # -- graphs ------------------------------------------------------------------------------

    async def register_graph(self, info: GraphInfo) -> None:
        await self.redis.hset(protocol.GRAPHS_KEY, info.name, protocol.encode_info(info))  # type: ignore[arg-type]

    async def graph_info(self, name: str) -> GraphInfo | None:
        raw = await self.redis.hget(protocol.GRAPHS_KEY, name)
        return protocol.decode_info(raw) if raw else None

    async def graph_names(self) -> list[str]:
        return sorted(k.decode() for k in await self.redis.hkeys(protocol.GRAPHS_KEY))

    # -- runs --------------------------------------------------------------------------------

    async def create_run(
        self, run_id: str, graph: str, input: Any, config: Mapping[str, Any], context: Any
    ) -> None:
        fields = {
            "graph": graph,
            "status": "pending",
            "version": "0",
            "input": codec.packb(input),
            "config": codec.pack_values(config, where="config"),
            "context": codec.packb(context),
            "created": str(time.time()),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(protocol.run_key(run_id), mapping=fields)
            pipe.sadd(protocol.active_key(graph), run_id)
            await pipe.execute()
        await self.notify(graph, InboxNote(kind="submit", run_id=run_id))

    async def load_run(self, run_id: str) -> RunRecord | None:
        fields = await self.redis.hgetall(protocol.run_key(run_id))
        return protocol.decode_run(run_id, fields) if fields else None

    async def status(self, run_id: str) -> str | None:
        raw = await self.redis.hget(protocol.run_key(run_id), "status")
        return raw.decode() if raw else None

    async def commit(
        self,
        record: RunRecord,
        *,
        status: str | None = None,
        checkpoint: Checkpoint | None = None,
        fingerprint: str | None = None,
        error: ErrorInfo | None = None,
        events: Sequence[tuple[EventMode, Any]] = (),
    ) -> bool:
        """Write the run's next position iff nobody else did since `record` was read."""
        fields: dict[str, bytes | str] = {}
        if status is not None:
            fields["status"] = status
        if checkpoint is not None:
            fields["checkpoint"] = protocol.encode_checkpoint(checkpoint)
        if fingerprint is not None:
            fields["fingerprint"] = fingerprint
        if error is not None:
            fields["error"] = codec.packb(protocol.encode_error(error))
        args: list[Any] = [str(record.version), str(len(fields))]
        for name, value in fields.items():
            args += [name, value]
        for mode, payload in events:
            args += [mode, codec.packb(payload)]
        keys = [protocol.run_key(record.run_id), protocol.events_key(record.run_id)]
        done = bool(await self._commit(keys=keys, args=args))
        if done and status in protocol.FINAL_STATUSES:
            await self.redis.srem(protocol.active_key(record.graph), record.run_id)
        return done

    async def expire_run(self, run_id: str, seconds: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in (protocol.run_key, protocol.outcomes_key, protocol.events_key):
                pipe.expire(key(run_id), seconds)
            await pipe.execute()

    async def request_cancel(self, run_id: str) -> RunRecord | None:
        record = await self.load_run(run_id)
        if record is None:
            return None
        await self.redis.hset(protocol.run_key(run_id), "cancel", "1")
        await self.notify(record.graph, InboxNote(kind="cancel", run_id=run_id))
        return record

    async def active_runs(self, graph: str) -> list[str]:
        return [m.decode() for m in await self.redis.smembers(protocol.active_key(graph))]

    # -- tasks -------------------------------------------------------------------------------

    async def enqueue(
        self, record: RunRecord, step: int, tasks: Sequence[Task], fingerprint: str, queue: str
    ) -> None:
        """Enqueue arq jobs for `tasks`; a task whose job already exists is left alone."""
        for task in tasks:
            job = protocol.TaskJob(
                run_id=record.run_id,
                step=step,
                task_id=task.id,
                graph=record.graph,
                fingerprint=fingerprint,
            )
            await self.redis.enqueue_job(
                protocol.TASK_FUNCTION,
                _job_id=protocol.job_id(record.run_id, task.id),
                _queue_name=queue,
                **job.model_dump(),
            )
        if tasks:
            wake = protocol.wake_key(queue)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.lpush(wake, *[b"1"] * len(tasks))
                pipe.ltrim(wake, 0, 1000)
                await pipe.execute()

    async def outcomes(self, run_id: str, task_ids: Sequence[str]) -> dict[str, TaskOutcome]:
        if not task_ids:
            return {}
        raw = await self.redis.hmget(protocol.outcomes_key(run_id), list(task_ids))
        return {
            tid: protocol.decode_outcome(blob) for tid, blob in zip(task_ids, raw, strict=True) if blob
        }

    async def has_outcome(self, run_id: str, task_id: str) -> bool:
        return bool(await self.redis.hexists(protocol.outcomes_key(run_id), task_id))

    async def post_outcome(
        self, graph: str, run_id: str, outcome: TaskOutcome, events: Sequence[tuple[EventMode, Any]]
    ) -> bool:
        """Record a task's outcome unless one is already there (the first wins), then notify."""
        args: list[Any] = [outcome.task_id, protocol.encode_outcome(outcome)]
        for mode, payload in events:
            args += [mode, codec.packb(payload)]
        keys = [protocol.outcomes_key(run_id), protocol.events_key(run_id)]
        first = bool(await self._post(keys=keys, args=args))
        if first:
            await self.notify(graph, InboxNote(kind="task_done", run_id=run_id))
        return first

    # -- events and notifications ------------------------------------------------------------

    async def emit(self, run_id: str, mode: EventMode, payload: Any) -> None:
        fields: dict[Any, Any] = protocol.encode_event(mode, payload)
        await self.redis.xadd(protocol.events_key(run_id), fields)

    async def events(self, run_id: str, block_ms: int = 1000) -> AsyncIterator[tuple[str, Any]]:
        """Every event of the run from its first, waiting for new ones, until its end event.

        Rides out Redis outages: retries with backoff and resumes after the last event it
        yielded, so no event is lost or yielded twice.
        """
        last = "0-0"
        key = protocol.events_key(run_id)
        delay = 0.1
        while True:
            try:
                reply = await self.redis.xread({key: last}, count=500, block=block_ms)
            except RETRYABLE as exc:
                log.warning("lost Redis reading the events of run %s (%s); retrying in %.1fs",
                            run_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    mode, payload = protocol.decode_event(fields)
                    yield mode, payload
                    if mode == "end":
                        return

    async def notify(self, graph: str, note: InboxNote) -> None:
        await self.redis.lpush(protocol.inbox_key(graph), protocol.encode_note(note))

    async def next_note(self, graphs: Sequence[str], timeout: float) -> InboxNote | None:
        keys = [protocol.inbox_key(g) for g in graphs]
        reply = await self.redis.brpop(keys, timeout=timeout)  # type: ignore[arg-type]
        if reply is None:
            return None
        try:
            return protocol.decode_note(reply[1])
        except Exception as exc:  # a garbage notification must not stop the orchestrator
            log.error("dropping unreadable inbox notification %r: %s", reply[1][:80], exc)
            return None
