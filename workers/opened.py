"""arq's run_job for a job the worker's take opened already: the same steps, without those
that a taken job makes idle.

arq 0.28's `Worker.run_job` opens the job (a MULTI: the job, its try), runs its function in a
task of its own, logs it, keeps its result and finishes it (another MULTI). For a job that
`GraphWorker` took, the take script opened it, and the post of the task's outcome ended it
with its result (`NodeRunner._post`): arq's result, built again and handed to a finish that
does nothing, cost each step a serialization and a task. `run_opened` does what arq's does
for such a job, in the job's own task; any job it does not expect (expired, garbled, for
another function, counted by an older enqueue) goes to arq's own run_job instead, whose
opening `OpenedJob` answers from what the take returned.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, NamedTuple

from arq.constants import job_key_prefix, retry_key_prefix
from arq.jobs import deserialize_job_raw, serialize_result
from arq.utils import args_to_string, ms_to_datetime, timestamp_ms, truncate
from arq.worker import Retry, RetryJob

from arqgraph import protocol
from arqgraph.storage.queue import TakenJob

if TYPE_CHECKING:
    from arqgraph.workers.worker import GraphWorker

arq_log = logging.getLogger("arq.worker")  # (arq's own lines, as its run_job logs them)
_NO_RESULT = object()


class Opened(NamedTuple):
    """A taken job as arq's run_job reads it."""

    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    enqueue_time_ms: int


def opened(worker: GraphWorker, job: TakenJob) -> Opened | None:
    """The job, when `run_opened` can run it as arq would: a task job, readable, of this
    worker, whose try is the take's; else None (arq's run_job sees to it)."""
    if not job.job:
        return None
    try:
        function, args, kwargs, enqueue_try, enqueued_ms = deserialize_job_raw(
            job.job, deserializer=worker.job_deserializer)
    except Exception:  # noqa: BLE001 - arq's run_job fails it as arq does
        return None
    if function != protocol.TASK_FUNCTION or function not in worker.functions:
        return None
    if enqueue_try and enqueue_try > job.tries:  # (arq then stores the try it counts)
        return None
    return Opened(function, tuple(args), dict(kwargs), enqueued_ms)


async def run_opened(worker: GraphWorker, job: TakenJob, found: Opened) -> None:
    """arq 0.28's run_job (job timeout none, no aborts, no hooks: as `build_worker` makes
    its workers), for a job `opened` read."""
    job_id, job_try, score = job.job_id, job.tries, job.score
    function = worker.functions[found.function]
    ref = f"{job_id}:{found.function}"
    ctx = {**worker.ctx, "job_id": job_id, "job_try": job_try,
           "enqueue_time": ms_to_datetime(found.enqueue_time_ms), "score": score}
    result: Any = _NO_RESULT
    finish, success, incr_score = False, False, None
    start_ms = timestamp_ms()
    if arq_log.isEnabledFor(logging.INFO):
        extra = f" try={job_try}" if job_try > 1 else ""
        if start_ms - score > 1200:
            extra += f" delayed={(start_ms - score) / 1000:0.2f}s"
        arq_log.info("%6.2fs → %s(%s)%s", (start_ms - found.enqueue_time_ms) / 1000, ref,
                     args_to_string(found.args, found.kwargs), extra)
    me = asyncio.current_task()
    assert me is not None
    worker.job_tasks[job_id] = me  # (where arq keeps a running job's task)
    try:
        try:
            result = await function.coroutine(ctx, *found.args, **found.kwargs)
        finally:
            del worker.job_tasks[job_id]
    except (Exception, asyncio.CancelledError) as e:
        seconds = (timestamp_ms() - start_ms) / 1000
        if worker.retry_jobs and isinstance(e, Retry):
            incr_score = e.defer_score
            arq_log.info("%6.2fs ↻ %s retrying job in %0.2fs", seconds, ref,
                         (e.defer_score or 0) / 1000)
            if e.defer_score:
                incr_score = e.defer_score + (timestamp_ms() - score)
            worker.jobs_retried += 1
        elif job_id in worker.aborting_tasks and isinstance(e, asyncio.CancelledError):
            arq_log.info("%6.2fs ⊘ %s aborted", seconds, ref)
            result, finish = e, True
            worker.aborting_tasks.remove(job_id)
            worker.jobs_failed += 1
        elif worker.retry_jobs and isinstance(e, asyncio.CancelledError | RetryJob):
            arq_log.info("%6.2fs ↻ %s cancelled, will be run again", seconds, ref)
            worker.jobs_retried += 1
        else:
            arq_log.exception("%6.2fs ! %s failed, %s: %s", seconds, ref, e.__class__.__name__,
                              e, extra={"extra": getattr(e, "extra", None)})
            result, finish = e, True
            worker.jobs_failed += 1
    else:
        success, finish = True, True
        worker.jobs_complete += 1
        if arq_log.isEnabledFor(logging.INFO):
            shown = "" if result is None or not worker.log_results else truncate(repr(result))
            arq_log.info("%6.2fs ← %s ● %s", (timestamp_ms() - start_ms) / 1000, ref, shown)
    if finish and success and job_id in worker.runner.ended:  # its post ended it, result
        worker.runner.ended.discard(job_id)  # kept (what `finish_job` would do with it)
        return
    keep_forever = worker.keep_result_forever if function.keep_result_forever is None \
        else function.keep_result_forever
    keep_s = worker.keep_result_s if function.keep_result_s is None else function.keep_result_s
    data = None
    if result is not _NO_RESULT and (keep_forever or keep_s > 0):
        data = serialize_result(
            found.function, found.args, found.kwargs, job_try, found.enqueue_time_ms, success,
            result, start_ms, timestamp_ms(), ref, worker.queue_name, job_id=job_id,
            serializer=worker.job_serializer)
    await asyncio.shield(worker.finish_job(job_id, finish, data, keep_s, keep_forever,
                                           incr_score, None))


class OpenedJob:
    """Stands in for arq 0.28's opening of a job in run_job (a MULTI of GET job, INCR try and
    EXPIRE of the counter), answering it with what TAKE_JOBS_SCRIPT returned."""

    def __init__(self, job: TakenJob) -> None:
        self.job = job
        self.calls: list[tuple[str, str]] = []

    def pipeline(self, transaction: bool = True) -> OpenedJob:
        return self

    async def __aenter__(self) -> OpenedJob:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def get(self, key: str) -> None:
        self.calls.append(("get", key))

    def incr(self, key: str) -> None:
        self.calls.append(("incr", key))

    def expire(self, key: str, seconds: int) -> None:
        self.calls.append(("expire", key))

    async def execute(self) -> list[Any]:
        job_id = self.job.job_id
        expected = [("get", job_key_prefix + job_id), ("incr", retry_key_prefix + job_id),
                    ("expire", retry_key_prefix + job_id)]
        if self.calls != expected:
            raise RuntimeError(f"arq's run_job opened job {job_id} with {self.calls}, not the "
                               f"{expected} of arq 0.28 that the take script does for it")
        return [self.job.job or None, self.job.tries, True]
