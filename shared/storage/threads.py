"""A thread's checkpoints as they are read back: the latest, one by id, the history, what a
step's tasks left (their outcomes, earlier attempts, resume values); and a thread's deletion
and pruning.
Runs write them (`arqgraph.storage.runs`)."""

from __future__ import annotations

from typing import Any, NamedTuple

from arq.connections import ArqRedis
from redis.exceptions import WatchError

from arqgraph import protocol
from arqgraph.core.pregel import TaskOutcome
from arqgraph.errors import CheckpointPrunedError
from arqgraph.protocol import SavedCheckpoint
from arqgraph.storage import blobs
from arqgraph.storage.batch import Batch
from arqgraph.storage.replay import NO_CHECKPOINT

# the fields of a step's writes hash that are not a task's outcome
OTHER_FIELDS = ("child:", "prior:", "resume:", "priors:", "fn:", "fnargs:", "fncancel:", "__")


class TaskRecords(NamedTuple):
    outcomes: dict[str, TaskOutcome]
    priors: dict[str, list[TaskOutcome]]
    children: dict[str, list[str]]  # task id -> checkpoint namespaces of the subgraphs it ran

    def children_threads(self, thread: str) -> set[str]:
        """The threads of the subgraphs these tasks ran, below `thread`."""
        user_thread, _ = protocol.split_thread(thread)
        return {protocol.child_thread(user_thread, ns) for nss in self.children.values()
                for ns in nss}


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
        return await blobs.resolved(self.redis, tag, protocol.decode_saved(raw)) if raw else None

    async def named_checkpoint(self, tag: str, checkpoint_id: str) -> SavedCheckpoint | None:
        """The checkpoint a config names by id (`saved_checkpoint`); None when the thread never
        had it, as LangGraph reads an unknown id. On a thread whose history depth pruned
        checkpoints, an id it lacks raises CheckpointPrunedError instead: most likely one of
        those, and starting from nothing would lose the thread's state silently."""
        saved = await self.saved_checkpoint(tag, checkpoint_id)
        if saved is None and checkpoint_id != NO_CHECKPOINT and int(await self._batch.command(
                "HGET", protocol.thread_key(tag), "pruned") or 0):
            raise CheckpointPrunedError(
                f"checkpoint {checkpoint_id} is not among the checkpoints its thread keeps: "
                "the thread keeps only its newest ones (the orchestrator's --history-depth), "
                "and older ones were pruned; resume or travel from one it keeps (see "
                "get_state_history)")
        return saved

    async def history(self, tag: str, limit: int | None = None) -> list[SavedCheckpoint]:
        """The thread's checkpoints, newest first."""
        ids = await self.redis.lrange(protocol.history_key(tag), 0, -1 if limit is None else limit - 1)
        if not ids:
            return []
        raws = await self.redis.hmget(protocol.checkpoints_key(tag), ids)
        return [await blobs.resolved(self.redis, tag, protocol.decode_saved(b))
                for b in raws if b]

    async def subgraph_threads(self, thread_id: str) -> list[str]:
        """The threads of the subgraphs the thread's steps ran, and theirs, each after the
        thread that ran it, in the order of the steps that ran them."""
        tag = protocol.thread_tag(thread_id)
        found: list[str] = []
        # (the checkpoints' ids only, oldest first: their values are not needed)
        for cid in reversed(await self.redis.lrange(protocol.history_key(tag), 0, -1)):
            records = await self.task_records(tag, cid.decode())
            for child in sorted(records.children_threads(thread_id)):
                if child not in found:
                    found += [child, *await self.subgraph_threads(child)]
        return found

    async def priors(self, tag: str, checkpoint_id: str, task_id: str) -> list[TaskOutcome]:
        """The outcomes a task had before it was run again, oldest first."""
        writes = protocol.writes_key(tag, checkpoint_id)
        count = int(await self.redis.hget(writes, f"priors:{task_id}") or 0)
        if not count:
            return []
        raw = await self.redis.hmget(writes, [f"prior:{task_id}:{n}" for n in range(1, count + 1)])
        read = {str(n): protocol.decode_outcome(r) for n, r in enumerate(raw) if r}
        return list((await blobs.resolved_outcomes(self.redis, tag, read)).values())

    async def task_records(self, tag: str, checkpoint_id: str) -> TaskRecords:
        """All that a checkpoint's step left: each task's outcome, its earlier outcomes set
        aside when it was run again (oldest first), and the checkpoint namespaces of the
        subgraphs it ran."""
        fields = await self.redis.hgetall(protocol.writes_key(tag, checkpoint_id))
        outcomes: dict[str, TaskOutcome] = {}
        priors: dict[str, list[tuple[int, TaskOutcome]]] = {}
        children: dict[str, list[str]] = {}
        for raw_name, blob in sorted(fields.items()):
            name = raw_name.decode()
            if name.startswith("child:"):
                task_id = name[len("child:"):].rpartition(":")[0]
                children.setdefault(task_id, []).append(blob.decode())
            elif name.startswith("prior:"):
                task_id, _, n = name[len("prior:"):].rpartition(":")
                priors.setdefault(task_id, []).append((int(n), protocol.decode_outcome(blob)))
            elif not name.startswith(OTHER_FIELDS):
                outcomes[name] = protocol.decode_outcome(blob)
        read = {**outcomes, **{f"prior:{t}:{n}": o for t, p in priors.items() for n, o in p}}
        if any(protocol.outcome_refs(o) for o in read.values()):  # (large values: read back)
            read = await blobs.resolved_outcomes(self.redis, tag, read)
            outcomes = {name: read[name] for name in outcomes}
            priors = {t: [(n, read[f"prior:{t}:{n}"]) for n, _ in p] for t, p in priors.items()}
        return TaskRecords(outcomes, {t: [o for _, o in sorted(p, key=lambda x: x[0])]
                                      for t, p in priors.items()}, children)

    async def task_runs(self, tag: str, checkpoint_id: str) -> dict[str, tuple[str, float, float]]:
        """Who ran each task of a checkpoint's step, when, and for how long (those told)."""
        fields = await self.redis.hgetall(protocol.writes_key(tag, checkpoint_id))
        runs = {}
        for raw_name, blob in fields.items():
            name = raw_name.decode()
            if not name.startswith(OTHER_FIELDS) and (ran := protocol.outcome_ran(blob)):
                runs[name] = ran
        return runs

    async def note_child(self, tag: str, checkpoint_id: str, task_id: str, n: int, ns: str) -> None:
        """Task `task_id` of the checkpoint's step runs a subgraph on the thread's namespace
        `ns` (its `n`-th): `get_state` shows it, deleting the thread deletes it."""
        await self.redis.hset(protocol.writes_key(tag, checkpoint_id), f"child:{task_id}:{n}", ns)

    async def resume_values(self, tag: str, checkpoint_id: str, task_id: str) -> list[Any]:
        raw = await self.redis.hget(protocol.writes_key(tag, checkpoint_id), f"resume:{task_id}")
        return list(protocol.decode_resume(raw))

    async def delete(self, thread_id: str) -> None:
        """The thread and all it keeps: its checkpoints, their writes and claims, and the
        threads of the subgraphs its steps ran."""
        tag = protocol.thread_tag(thread_id)
        ids = [c.decode() for c in await self.redis.hkeys(protocol.checkpoints_key(tag))]
        keys = [protocol.thread_key(tag), protocol.checkpoints_key(tag), protocol.history_key(tag),
                protocol.blobs_key(tag), protocol.blob_runs_key(tag), protocol.orphans_key(tag)]
        children: set[str] = set()
        for cid in ids:
            keys += [protocol.writes_key(tag, cid), protocol.claims_key(tag, cid)]
            children.update((await self.task_records(tag, cid)).children_threads(thread_id))
        await self.redis.delete(*keys)
        for child in children:
            await self.delete(child)

    async def keep_latest(self, thread_id: str, tries: int = 10) -> bool:
        """Drop the thread's checkpoints but its latest (LangGraph's prune `keep_latest`):
        their steps' writes and claims and the threads of the subgraphs they ran; the latest's
        own step and subgraph threads stay (pruned alike). Blobs stay: the kept checkpoint and
        the runs' events may refer to them. Made as one transaction, tried again if a run
        commits meanwhile. False: no such thread."""
        tag = protocol.thread_tag(thread_id)
        history = protocol.history_key(tag)
        for _ in range(tries):
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(history, protocol.thread_key(tag))
                latest = await pipe.hget(protocol.thread_key(tag), "latest")
                if latest is None:
                    return False
                keep = latest.decode()
                gone = [c.decode() for c in await pipe.hkeys(protocol.checkpoints_key(tag))
                        if c.decode() != keep]
                kept = (await self.task_records(tag, keep)).children_threads(thread_id)
                children: set[str] = set()
                for cid in gone:
                    children.update((await self.task_records(tag, cid)).children_threads(
                        thread_id))
                pipe.multi()
                if gone:
                    pipe.hdel(protocol.checkpoints_key(tag), *gone)
                    pipe.delete(*[k for cid in gone for k in (
                        protocol.writes_key(tag, cid), protocol.claims_key(tag, cid))])
                pipe.delete(history)
                pipe.rpush(history, keep)
                try:
                    await pipe.execute()
                except WatchError:
                    continue
            for child in children - kept:
                await self.delete(child)
            for child in kept:
                await self.keep_latest(child)
            return True
        raise RuntimeError(f"thread {thread_id}: runs kept committing while it was pruned")

    async def copy(self, thread_id: str, new_thread_id: str) -> None:
        """Copy the thread and all it keeps (checkpoints, their writes and claims, its
        subgraphs' threads) to a new thread id, not busy with any run; its runs stay the
        original's."""
        tag, new_tag = protocol.thread_tag(thread_id), protocol.thread_tag(new_thread_id)
        ids = [c.decode() for c in await self.redis.hkeys(protocol.checkpoints_key(tag))]
        keys = [(protocol.thread_key(tag), protocol.thread_key(new_tag)),
                (protocol.checkpoints_key(tag), protocol.checkpoints_key(new_tag)),
                (protocol.history_key(tag), protocol.history_key(new_tag)),
                (protocol.blobs_key(tag), protocol.blobs_key(new_tag))]
        children: set[str] = set()
        for cid in ids:
            keys += [(protocol.writes_key(tag, cid), protocol.writes_key(new_tag, cid)),
                     (protocol.claims_key(tag, cid), protocol.claims_key(new_tag, cid))]
            children.update((await self.task_records(tag, cid)).children_threads(thread_id))
        for old, new in keys:
            blob = await self.redis.dump(old)
            if blob is not None:
                await self.redis.restore(new, 0, blob, replace=True)
        await self.redis.hset(protocol.thread_key(new_tag), "thread_id", new_thread_id)
        await self.redis.hdel(protocol.thread_key(new_tag), "run")
        user_thread = protocol.split_thread(new_thread_id)[0]
        for child in children:
            await self.copy(child, protocol.child_thread(user_thread,
                                                         protocol.split_thread(child)[1]))
