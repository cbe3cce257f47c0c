"""The server's records beside the cluster's: a thread's metadata, a run's assistant, metadata
and stream options (keys in `arqgraph.protocol`). They live in the cluster's Redis, so every
server process reads the same ones and none keeps state of its own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pydantic
from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core import codec
from arqgraph.storage.batch import Batch


class ThreadRecord(pydantic.BaseModel):
    thread_id: str
    created_at: str
    updated_at: str
    metadata: dict[str, Any] = {}
    graph_id: str | None = None


class RunInfo(pydantic.BaseModel):
    """A run as the API shows it (its status is the cluster run's)."""

    run_id: str
    thread_id: str
    assistant_id: str
    graph_id: str
    created_at: str
    updated_at: str
    metadata: dict[str, Any] = {}
    multitask_strategy: str = "reject"
    stream_mode: list[str] = ["values"]
    stream_subgraphs: bool = False
    stateless: bool = False  # its thread was made for it (`/runs/...`, no thread)
    before_checkpoint: str | None = None  # its thread's latest when it started (rollback)
    starts_at: float | None = None  # a delayed run's due time (epoch seconds)
    fixed_status: str | None = None  # the status of a delayed run that never started
    kwargs: dict[str, Any] = {}


def _pack(model: pydantic.BaseModel) -> bytes:
    return codec.packb(model.model_dump(mode="json"))


class Records:
    """Threads and runs the server started, read and written over the cluster's Redis."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis: Any = redis
        self._batch = Batch(redis)  # the writes of concurrent requests: one round trip

    async def put_thread(self, record: ThreadRecord) -> None:
        await asyncio.gather(
            self._batch.command("SET", protocol.served_thread_key(record.thread_id),
                                _pack(record)),
            self._batch.command("ZADD", protocol.SERVED_THREADS_KEY, "NX", time.time(),
                                record.thread_id))

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        raw = await self.redis.get(protocol.served_thread_key(thread_id))
        return ThreadRecord.model_validate(codec.unpackb(raw)) if raw else None

    async def thread_ids(self) -> list[str]:
        """Every thread created through a server, newest first."""
        return [i.decode() for i in await self.redis.zrevrange(protocol.SERVED_THREADS_KEY, 0, -1)]

    async def delete_thread(self, thread_id: str) -> None:
        run_ids = await self.run_ids(thread_id)
        await self.redis.delete(protocol.served_thread_key(thread_id),
                                protocol.served_runs_key(thread_id),
                                *[protocol.served_run_key(r) for r in run_ids])
        await self.redis.zrem(protocol.SERVED_THREADS_KEY, thread_id)

    async def put_run(self, info: RunInfo, expire: int, restarted: bool = False) -> None:
        """Record a run; a stateless run's record expires in `expire` seconds, with its run,
        and is listed under no thread (its thread is its own, as LangGraph's temporary one);
        a thread's runs live as long as the thread. `restarted`: a delayed run, started now,
        is listed as started now (where a thread's stream looks for new runs)."""
        if info.stateless:
            await self._batch.command("SET", protocol.served_run_key(info.run_id), _pack(info),
                                      "EX", expire)
            return
        await asyncio.gather(
            self._batch.command("SET", protocol.served_run_key(info.run_id), _pack(info)),
            self._batch.command("ZADD", protocol.served_runs_key(info.thread_id),
                                "XX" if restarted else "NX", time.time(), info.run_id))

    async def get_run(self, run_id: str) -> RunInfo | None:
        try:
            key = protocol.served_run_key(run_id)
        except ValueError:  # not an arqgraph run id
            return None
        raw = await self._batch.command("GET", key)
        return RunInfo.model_validate(codec.unpackb(raw)) if raw else None

    async def run_ids(self, thread_id: str) -> list[str]:
        """The thread's runs, newest first."""
        return [i.decode() for i in
                await self.redis.zrevrange(protocol.served_runs_key(thread_id), 0, -1)]

    async def runs_since(self, thread_id: str, since: float) -> list[tuple[str, float]]:
        """The thread's runs started at or after `since` (epoch seconds), oldest first, with
        their start times."""
        found = await self.redis.zrangebyscore(protocol.served_runs_key(thread_id), since,
                                               "+inf", withscores=True)
        return [(i.decode(), float(score)) for i, score in found]

    async def delete_run(self, info: RunInfo) -> None:
        await self.redis.delete(protocol.served_run_key(info.run_id))
        await self.redis.zrem(protocol.served_runs_key(info.thread_id), info.run_id)

    # -- assistants made through the server (their docs are LangGraph's `Assistant` JSON) --

    async def get_assistant(self, assistant_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(protocol.served_assistant_key(assistant_id), "doc")
        return codec.unpackb(raw) if raw else None

    async def put_assistant(self, doc: dict[str, Any], first: bool = False) -> dict[str, Any]:
        """Save `doc` as the assistant's next version and make it the latest; the doc as saved,
        with its version. `first`: a new assistant (ValueError if another request made it)."""
        key = protocol.served_assistant_key(doc["assistant_id"])
        version = int(await self.redis.hincrby(key, "count", 1))
        if first and version != 1:
            raise ValueError("the assistant exists")
        doc = {**doc, "version": version}
        packed = codec.packb(doc)
        await self.redis.hset(key, mapping={f"v{version}": packed, "doc": packed,
                                            "latest": version})
        if first:
            await self.redis.zadd(protocol.SERVED_ASSISTANTS_KEY,
                                  {doc["assistant_id"]: time.time()})
        return doc

    async def assistant_versions(self, assistant_id: str) -> list[dict[str, Any]]:
        """The assistant's versions, newest first."""
        fields = await self.redis.hgetall(protocol.served_assistant_key(assistant_id))
        docs = [codec.unpackb(v) for k, v in fields.items() if k.startswith(b"v")]
        return sorted(docs, key=lambda d: -int(d["version"]))

    async def set_latest_assistant(self, assistant_id: str, version: int) -> dict[str, Any] | None:
        key = protocol.served_assistant_key(assistant_id)
        raw = await self.redis.hget(key, f"v{version}")
        if raw is None:
            return None
        await self.redis.hset(key, mapping={"doc": raw, "latest": version})
        return codec.unpackb(raw)  # type: ignore[no-any-return]

    async def assistant_ids(self) -> list[str]:
        """The assistants made through a server, newest first."""
        return [i.decode() for i in
                await self.redis.zrevrange(protocol.SERVED_ASSISTANTS_KEY, 0, -1)]

    async def delete_assistant(self, assistant_id: str) -> bool:
        gone = await self.redis.delete(protocol.served_assistant_key(assistant_id))
        await self.redis.zrem(protocol.SERVED_ASSISTANTS_KEY, assistant_id)
        return bool(gone)
