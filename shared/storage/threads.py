"""A thread's checkpoints as they are read back: the latest, one by id, the history, what a
step's tasks left (their outcomes, earlier attempts, resume values); and a thread's deletion.
Runs write them (`arqgraph.storage.runs`)."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core.pregel import TaskOutcome
from arqgraph.protocol import SavedCheckpoint
from arqgraph.storage.batch import Batch


class ThreadStore:
    """Reads of threads' checkpoints and of what their steps left, and their deletion."""

    def __init__(self, redis: ArqRedis, batch: Batch) -> None:
        self.redis = redis
        self._batch = batch

    async def latest_checkpoint(self, tag: str) -> SavedCheckpoint | None:
        cid = await self._batch.command("HGET", protocol.thread_key(tag), "latest")
        return await self.saved_checkpoint(tag, cid.decode()) if cid else None

    async def saved_checkpoint(self, tag: str, checkpoint_id: str) -> SavedCheckpoint | None:
        raw = await self._batch.command("HGET", protocol.checkpoints_key(tag), checkpoint_id)
        return protocol.decode_saved(raw) if raw else None

    async def history(self, tag: str, limit: int | None = None) -> list[SavedCheckpoint]:
        """The thread's checkpoints, newest first."""
        ids = await self.redis.lrange(protocol.history_key(tag), 0, -1 if limit is None else limit - 1)
        if not ids:
            return []
        blobs = await self.redis.hmget(protocol.checkpoints_key(tag), ids)
        return [protocol.decode_saved(b) for b in blobs if b]

    async def task_records(
        self, tag: str, checkpoint_id: str
    ) -> tuple[dict[str, TaskOutcome], dict[str, list[TaskOutcome]]]:
        """All that a checkpoint's step left: each task's outcome, and its earlier outcomes set
        aside when it was run again (oldest first)."""
        fields = await self.redis.hgetall(protocol.writes_key(tag, checkpoint_id))
        outcomes: dict[str, TaskOutcome] = {}
        priors: dict[str, list[tuple[int, TaskOutcome]]] = {}
        for raw_name, blob in fields.items():
            name = raw_name.decode()
            if name.startswith("prior:"):
                task_id, _, n = name[len("prior:"):].rpartition(":")
                priors.setdefault(task_id, []).append((int(n), protocol.decode_outcome(blob)))
            elif not name.startswith(("resume:", "priors:", "fn:", "fnargs:", "__")):
                outcomes[name] = protocol.decode_outcome(blob)
        return outcomes, {t: [o for _, o in sorted(p, key=lambda x: x[0])] for t, p in priors.items()}

    async def resume_values(self, tag: str, checkpoint_id: str, task_id: str) -> list[Any]:
        raw = await self.redis.hget(protocol.writes_key(tag, checkpoint_id), f"resume:{task_id}")
        return list(protocol.decode_resume(raw))

    async def delete(self, thread_id: str) -> None:
        """The thread and all it keeps: its checkpoints, their writes and claims."""
        tag = protocol.thread_tag(thread_id)
        ids = [c.decode() for c in await self.redis.hkeys(protocol.checkpoints_key(tag))]
        keys = [protocol.thread_key(tag), protocol.checkpoints_key(tag), protocol.history_key(tag)]
        for cid in ids:
            keys += [protocol.writes_key(tag, cid), protocol.claims_key(tag, cid)]
        await self.redis.delete(*keys)
