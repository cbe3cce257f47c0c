"""The arq queue that carries node jobs, as arqgraph's processes use it.

The queue stays arq's own (its sorted set of due times, job keys, in-progress keys and results),
so arq still runs every job; these operations do arq's bookkeeping for many jobs in one round
trip (enqueue, pick-up) and keep the queue's ready list beside it: a list of the ids of jobs
just enqueued or handed back, which idle workers wait on with a blocking pop instead of
polling the queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix, retry_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

from arqgraph import protocol
from arqgraph.core.pregel import Task
from arqgraph.observe import traces
from arqgraph.protocol import RunRecord
from arqgraph.storage.batch import Batch
from arqgraph.storage.dead_letters import set_aside

JobEnd = Literal["done", "redrive", "fenced"]
"""How a job ended without its task's outcome (see FINISH_JOB_SCRIPT)."""
ENQUEUE_CHUNK = 500  # jobs enqueued per round trip
JOB_EXPIRY_MS = 86_400_000  # an arq job not started within a day is dropped (arq's default)
RESULT_KEPT_S = 60  # a finished job's arq result: a re-enqueue of the job within it is a no-op


class TakenJob(NamedTuple):
    """A job a worker took, as arq's run_job opens it: its queue score, the job as enqueued
    (b"" when it expired) and which try this is; and its task's start (see `JobQueue.take`)."""

    job_id: str
    score: int
    job: bytes
    tries: int
    started: Any = None  # the reply of the start of its task, if asked for (see `take`)


class Sweep(NamedTuple):
    """What a sweep of the queue found (see `JobQueue.sweep`)."""

    job_ids: list[str]  # due jobs no worker held, oldest first: candidates for the take
    most: int  # how many of them to take
    next_due: int | None  # arq's ms when the earliest job deferred to the future comes due


class ScriptCall(NamedTuple):
    """The keys and arguments of one call of a script."""

    keys: list[str]
    args: list[Any]


class JobQueue:
    """One arq queue (`name`) of task jobs, and its ready list."""

    def __init__(self, redis: ArqRedis, name: str) -> None:
        self.redis = redis
        self.name = name
        self._batch = Batch(redis)  # the ends of jobs finishing together: one round trip
        self._enqueue = self._batch.script(protocol.ENQUEUE_JOBS_SCRIPT)
        self._take = self._batch.script(protocol.TAKE_JOBS_SCRIPT)
        self._finish = self._batch.script(protocol.FINISH_JOB_SCRIPT)
        self._due = self._batch.script(protocol.DUE_JOBS_SCRIPT)
        self._requeue = self._batch.script(protocol.REQUEUE_JOB_SCRIPT)
        # what this process's holds of jobs say (their in-progress keys): it ends or gives back
        # only a job it still holds, not one taken again since its lease ran out
        self.token = uuid.uuid4().hex

    # -- enqueueing (the orchestrator, and entrypoints' task calls) ----------------------------

    async def enqueue(
        self, record: RunRecord, step: int, tasks: Sequence[Task], fingerprint: str,
        expected: int | None = None,
    ) -> None:
        """Enqueue arq jobs for `tasks`, as arq's `enqueue_job` would but a chunk per round
        trip (a task whose job, or its result, exists already is left alone), and list them as
        ready (which wakes idle workers). `expected`: how many outcomes workers will post for
        the step (see POST_OUTCOME_SCRIPT: the last of them, or a failure, tells the orchestrator)."""
        for start in range(0, len(tasks), ENQUEUE_CHUNK):
            call = self._enqueue_call(record, step, tasks[start:start + ENQUEUE_CHUNK],
                                      fingerprint, expected)
            await self._enqueue(keys=call.keys, args=call.args)

    @staticmethod
    def fits(jobs: int) -> bool:
        """Whether so many jobs are enqueued in one call (`single_enqueue`)."""
        return jobs <= ENQUEUE_CHUNK

    def single_enqueue(
        self, record: RunRecord, step: int, tasks: Sequence[Task], fingerprint: str,
        expected: int | None = None, hold: bool = False,
    ) -> ScriptCall | None:
        """`enqueue`'s script call for `tasks`, to be made inside another script (the commit
        of their step, see RunStore.commit), when they fit in one; None when they do not.
        `hold`: the first task's job is not listed as ready, for the caller takes it in the
        same script (`hold_call`)."""
        if not self.fits(len(tasks)):
            return None
        return self._enqueue_call(record, step, tasks, fingerprint, expected, hold)

    def _enqueue_call(
        self, record: RunRecord, step: int, tasks: Sequence[Task], fingerprint: str,
        expected: int | None, hold: bool = False,
    ) -> ScriptCall:
        """The keys and arguments of ENQUEUE_JOBS_SCRIPT for `tasks` of the step `record` is
        on."""
        now = timestamp_ms()
        keys: list[str] = [self.name, protocol.ready_key(self.name),
                           protocol.writes_key(record.tag, record.checkpoint_id)]
        # (a step of one task is not counted: its outcome completes it, see POST_OUTCOME_SCRIPT)
        args: list[Any] = [now, JOB_EXPIRY_MS, "" if expected is None or expected == 1 else expected,
                           "1" if hold else ""]
        job = protocol.TaskJob(  # validated once: the tasks' jobs differ only in their task ids
            run_id=record.run_id, checkpoint_id=record.checkpoint_id, step=step, task_id="",
            graph=record.graph, fingerprint=fingerprint, trace=record.step_trace or record.trace,
        ).model_dump()
        for task in tasks:
            job_id = protocol.job_id(record.run_id, record.checkpoint_id, task.id)
            keys += [job_key_prefix + job_id, result_key_prefix + job_id]
            args += [job_id, serialize_job(protocol.TASK_FUNCTION, (), {**job, "task_id": task.id},
                                           None, now, serializer=self.redis.job_serializer)]
        return ScriptCall(keys, args)

    async def enqueue_call(
        self, record: RunRecord, checkpoint_id: str, call_id: str, fingerprint: str
    ) -> None:
        """Enqueue a task call of the Functional API as a job, and list it as ready (see
        ENQUEUE_JOBS_SCRIPT: a no-op while its job exists or has arq's result; so its waiter
        calls it again now and then, to run again a job taken for stale, which ends without
        a result)."""
        job = protocol.TaskJob(run_id=record.run_id, checkpoint_id=checkpoint_id, step=-1,
                               task_id=call_id, graph=record.graph, fingerprint=fingerprint,
                               trace=traces.current_or(record.step_trace or record.trace))
        job_id = protocol.job_id(record.run_id, checkpoint_id, call_id)
        now = timestamp_ms()
        await self._enqueue(
            keys=[self.name, protocol.ready_key(self.name),
                  protocol.writes_key(record.tag, checkpoint_id), job_key_prefix + job_id,
                  result_key_prefix + job_id],
            args=[now, JOB_EXPIRY_MS, "", "", job_id, serialize_job(
                protocol.TASK_FUNCTION, (), job.model_dump(), None, now,
                serializer=self.redis.job_serializer)])

    async def depth(self) -> int:
        """How many jobs the queue holds: due, deferred or running (for the metrics)."""
        return int(await self.redis.zcard(self.name))

    async def drop(self, record: RunRecord, task_ids: Sequence[str]) -> None:
        """Take queued jobs of the step `record` is on out of the queue (a cancelled run's
        tasks need not start)."""
        if task_ids:
            await self.redis.zrem(self.name, *[
                protocol.job_id(record.run_id, record.checkpoint_id, t) for t in task_ids])

    # -- pick-up (the workers) -------------------------------------------------------------------

    async def take(
        self, job_ids: Sequence[str], lease: float, most: int,
        starts: Sequence[ScriptCall | None] = (), claimed_later: Sequence[str] = (),
    ) -> list[TakenJob]:
        """Take up to `most` of these jobs for this worker and count their tries (see
        TAKE_JOBS_SCRIPT); `starts`, if given: for each job, the load of its run and claim of its
        task to make as it is taken (RunStore.start_call), or None; except the claims of the
        tasks of the graphs `claimed_later`."""
        if not job_ids or most <= 0:
            return []
        keys = [self.name]
        args: list[Any] = [timestamp_ms(), int(lease * 1000), most, self.token,
                           protocol.LEASE_KEY_PREFIX, job_key_prefix, retry_key_prefix,
                           len(claimed_later), *claimed_later]
        shared: tuple[Any, ...] | None = None
        count = 0  # where the count of jobs of the last group is
        for job_id, start in zip(job_ids, starts or [None] * len(job_ids), strict=True):
            # (a group: the jobs of one step in a row, sharing its keys and the run's load)
            group = (self.name,) * 4 + ("", "", "") if start is None else (
                *start.keys[:4], start.args[0], *start.args[2:4])
            if group != shared:
                shared = group
                keys += group[:4]
                args += [*group[4:], 0]
                count = len(args) - 1
            args[count] += 1
            args += [job_id, "" if start is None else start.args[1]]
        reply = await self._take(keys=keys, args=args)
        return [TakenJob(reply[i].decode(), int(float(reply[i + 1])), reply[i + 2],
                         int(reply[i + 3]), _started(reply[i + 4:i + 11]))
                for i in range(0, len(reply), 11)]

    def hold_call(self, record: RunRecord, task_id: str, lease: float) -> ScriptCall:
        """The take of the job of `task_id`, of the step `record` is on, and the claim of its
        task: made by the post whose commit enqueues the job, with the commit (see
        POST_OUTCOME_SCRIPT), for the posting worker to run the job next; the reply's
        tail is read by `held`."""
        job_id = protocol.job_id(record.run_id, record.checkpoint_id, task_id)
        keys = [self.name, protocol.lease_key(job_id),
                protocol.claims_key(record.tag, record.checkpoint_id)]
        return ScriptCall(keys, [job_id, timestamp_ms(), int(lease * 1000), task_id, self.token])

    @staticmethod
    def held(call: ScriptCall, reply: Sequence[Any]) -> TakenJob:
        """The job a `hold_call` took, from the script's reply (score, job, try, claim)."""
        return TakenJob(call.args[0], int(float(reply[0])), reply[1], int(reply[2]), reply[3])

    async def sweep(self, read: int, most: int, while_listed: int) -> Sweep:
        """The sweep's read of the queue (DUE_JOBS_SCRIPT): among its first `read` due jobs, the
        oldest that no worker holds, and how many of them to take: `most`, `while_listed` at most
        while the ready list has ids; and when the earliest job deferred to the future is due."""
        reply = await self._due(keys=[self.name, protocol.ready_key(self.name)],
                                args=[timestamp_ms(), read, most, while_listed,
                                      protocol.LEASE_KEY_PREFIX])
        job_ids = await self._readable(reply[2:], self.name)
        return Sweep(job_ids, int(reply[1]),
                     int(float(reply[0])) if reply[0] else None)

    async def pop_ready(self, most: int, timeout: float | None) -> list[str]:
        """Up to `most` ready job ids, waiting up to `timeout` seconds for the first; None: no
        wait (a worker whose last pop was full takes the rest of a fan-out before the nodes it
        started run)."""
        key = protocol.ready_key(self.name)
        popped = (await self.redis.lmpop(1, key, direction="LEFT", count=most)  # type: ignore[arg-type]
                  if timeout is None else
                  await self.redis.blmpop(timeout, 1, key, direction="LEFT", count=most))  # type: ignore[arg-type]
        return await self._readable(popped[1], key) if popped else []

    async def _readable(self, raw_ids: Sequence[bytes], where: str) -> list[str]:
        """The job ids among `raw_ids` that arq can run (UTF-8; arq decodes them): the others
        are set aside as dead letters and taken out of the queue with their job keys, else
        every worker would take them, and fail on them, again and again."""
        job_ids: list[str] = []
        for raw in raw_ids:
            try:
                job_ids.append(raw.decode())
            except UnicodeDecodeError as exc:
                keys = [prefix.encode() + raw for prefix in (
                    job_key_prefix, retry_key_prefix, protocol.LEASE_KEY_PREFIX)]
                taken_out = await self.redis.zrem(self.name, raw)
                await self.redis.delete(*keys)
                if taken_out or where != self.name:  # (once: workers sweeping together)
                    await set_aside(self.redis, where,
                                    f"a job id that is not UTF-8 ({exc.reason})", raw)
        return job_ids

    async def release(self, job_id: str) -> None:
        """Give a job this worker took back to the queue, at once: its in-progress key goes and
        it is listed as ready again (it would otherwise wait for its lease to run out)."""
        await self.requeue(job_id, timestamp_ms(), listed=True)

    async def requeue(self, job_id: str, due_ms: int, listed: bool) -> None:
        """A job this worker held goes back to the queue, due at `due_ms` (REQUEUE_JOB_SCRIPT);
        `listed`: as ready, at the head of the list."""
        await self._requeue(
            keys=[self.name, protocol.ready_key(self.name), protocol.lease_key(job_id)],
            args=[job_id, due_ms, "1" if listed else "", self.token])

    async def ready_again(self, job_ids: Sequence[str]) -> None:
        """Put job ids back at the head of the ready list (a job handed back, a retry come
        due, ids popped by a worker that is stopping)."""
        if job_ids:
            await self.redis.lpush(protocol.ready_key(self.name), *reversed(job_ids))

    async def finish(self, job_id: str, result: bytes, keep_ms: int, end: JobEnd = "done"
                     ) -> bool:
        """arq's end of a job that finished without posting its task's outcome, batched with
        others: `end` says how (see FINISH_JOB_SCRIPT; not when another worker holds it now).
        Whether it ended the job."""
        call = self.finish_call(job_id, result, keep_ms)
        return bool(await self._finish(call.keys, [*call.args, self.token, end]))

    def finish_call(self, job_id: str, result: bytes, keep_ms: int) -> ScriptCall:
        """`finish`'s script call, to be made inside another script (the post of the job's
        outcome, see RunStore.post_outcome)."""
        keys = [protocol.lease_key(job_id), retry_key_prefix + job_id, job_key_prefix + job_id,
                self.name, result_key_prefix + job_id]
        return ScriptCall(keys, [job_id, result, keep_ms])


def _started(flat: Sequence[Any]) -> Any:
    """The reply of the start of a taken job's task, as `load` gives it (see
    RunStore.read_start), from the take's flat reply of it (see TAKE_JOBS_SCRIPT)."""
    loaded, fields, checkpoint, *claim = flat
    if not loaded:
        return loaded  # (None: not asked for; 0: the run is gone)
    made = None if claim[0] is None else claim[:1] if claim[0] == 0 else claim
    return [fields, checkpoint, made]
