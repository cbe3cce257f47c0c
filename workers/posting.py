"""Posting a task's outcome from the worker, with what comes with the post: the end of its arq
job, the move of its run to the next superstep (or its end) when the task was its step's only
one, and the job of that next step, which this worker may take in the same round trip (and
gives back when it will not run it). Part of `arqgraph.workers.runner.NodeRunner`, which runs
the task; kept apart so that each file holds one concern."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from arqgraph import protocol
from arqgraph.core.pregel import Task, TaskOutcome
from arqgraph.errors import ErrorInfo, RunCancelledError
from arqgraph.protocol import RunRecord
from arqgraph.storage.commits import Commit
from arqgraph.storage.connection import Backoff, lost_redis
from arqgraph.storage.moves import Move, MovePlanner
from arqgraph.storage.queue import JobQueue, ScriptCall, TakenJob
from arqgraph.storage.runs import Claim, Posted, RedisFullError, RunStore

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph

log = logging.getLogger("arqgraph.worker")


class ArqJob(NamedTuple):
    """What arq's run_job knows of the job it runs, to end the job as arq would."""

    job_id: str
    enqueued_ms: int
    started_ms: int
    due_ms: int = 0  # its queue score: when it came due (a retry's, after its backoff)


DONE = "done"  # what a job whose task's outcome was recorded returns


def sole_task(record: RunRecord) -> bool:
    """Whether the run's step has one task: its post completes the step (no count to keep)."""
    return record.checkpoint is not None and len(record.checkpoint.tasks) == 1
HandOver = Callable[[str, TakenJob], None]  # (the job that posted, the job its post took)


class OutcomePoster:
    """The posting half of NodeRunner (which sets these attributes)."""

    store: RunStore
    jobs: JobQueue
    planner: MovePlanner
    lease: float
    max_update_bytes: int
    giving_back: set[asyncio.Future[None]]
    started: dict[str, tuple[RunRecord | None, Claim | None | Literal[False]]]
    ended: set[str]
    worker_id: str

    async def post_handled(self, job: protocol.TaskJob, task: Task, node_error: ErrorInfo,
                            claim: Claim, arq_job: ArqJob | None, record: RunRecord,
                            began: float) -> None:
        """The outcome of a task whose node failed and whose error handler was cancelled with
        its run: the node's error, the handler's cancellation. LangGraph keeps the node's
        error, its handler being a task of its own, and a resumed run runs the handler only."""
        cancelled = ErrorInfo.of(RunCancelledError("its error handler was cancelled with the "
                                                   "run"), task.node)
        outcome = TaskOutcome(task.id, task.node, error=cancelled, node_error=node_error)
        posted = await self._post(job, outcome, (), claim, arq_job,
                                  ran=(self.worker_id, began, time.time() - began),
                                  sole=sole_task(record))
        if posted.code > 0 and arq_job is not None:  # (the post ended its job, as arq would)
            self.ended.add(arq_job.job_id)

    async def _post(
        self, job: protocol.TaskJob, outcome: TaskOutcome, events: Sequence[tuple[Any, Any]],
        claim: Claim, arq_job: ArqJob | None, commit: Commit | None = None,
        hold: Move | None = None, ran: tuple[str, float, float] | None = None,
        sole: bool = False,
    ) -> Posted:
        """Post the node's outcome, waiting out a Redis outage rather than losing the node's
        work (posting again is harmless: the first outcome posted wins). A recorded outcome
        ends the arq job in the same round trip (see `_job_end`), and makes the `commit` of
        the run that it completes its step for (see `_planned_commit`): when that is the move
        to `hold`, taking the job of the run's next step (of one task) for this worker too."""
        held = None
        if hold is not None:
            assert hold.moved.saved is not None
            first = hold.moved.saved.checkpoint.tasks[0]
            held = self.jobs.hold_call(hold.moved, first.id, self.lease)
        backoff = Backoff()
        while True:
            try:
                posting = self.store.post_outcome(
                    job.graph, job.run_id, job.checkpoint_id, outcome, events, claim,
                    self.max_update_bytes, self._job_end(arq_job), commit, held, ran, sole,
                )
                if held is None:  # (awaited in this task: no task of its own per post)
                    return await posting
                post = asyncio.ensure_future(posting)
                try:
                    return await asyncio.shield(post)
                except asyncio.CancelledError:  # (a worker stopping at once): once the post is
                    post.add_done_callback(self._give_back_held)  # made, give the job back
                    raise
            except RedisFullError as exc:  # keep the node's work until Redis has room again
                log.error("%s; retrying in %.1fs", exc, backoff.delay)
            except Exception as exc:
                if not lost_redis(exc):
                    raise
                log.warning("lost Redis posting the outcome of task %s of run %s (%s); "
                            "retrying in %.1fs", job.task_id, job.run_id, exc, backoff.delay)
            await backoff.wait()

    def _give_back_held(self, post: asyncio.Future[Posted]) -> None:
        if not post.cancelled() and post.exception() is None:
            posted = post.result()
            if posted.next_job is not None:
                self.give_back_soon(posted.next_job, posted.next_claim)

    def give_back_soon(self, job: TakenJob, claim: Claim | None = None) -> None:
        """`give_back`, in a task of its own (kept in `giving_back` until it is done)."""
        task = asyncio.ensure_future(self.give_back(job, claim))
        self.giving_back.add(task)
        task.add_done_callback(self.giving_back.discard)

    async def give_back(self, job: TakenJob, claim: Claim | None = None) -> None:
        """Give back a job that a post took for this worker, which will not run it (it is
        stopping, or the job that posted was cancelled): its task's start (`claim`, else the
        one kept in `started`) does not count as lost, and the job is listed as ready for
        others at once, not when its lease runs out."""
        _, kept = self.started.pop(job.job_id, (None, None))
        claim = claim or (kept or None)
        task = protocol.task_of_job(job.job_id)
        try:
            if claim is not None and task is not None:
                await self.store.end_attempt(protocol.tag_of(task[0]), task[1], task[2], claim,
                                             failed=False)
            await self.jobs.release(job.job_id)
        except Exception as exc:  # Redis gone: the sweep starts it once its lease runs out
            log.warning("could not give back job %s: %s", job.job_id, exc)

    def _moves_on(self, record: RunRecord, outcome: TaskOutcome) -> bool:
        """Whether this worker moves the run on with the post of the outcome: when its task
        was the only one of its step and succeeded (a failure or an interrupt stops the run,
        which is the orchestrator's to do), unless it sends more tasks than one call enqueues
        (a fan-out's step is committed apart from its jobs, by the orchestrator: planning it
        here too would apply the writes twice on the fan-out's path)."""
        assert record.checkpoint is not None
        return (len(record.checkpoint.tasks) == 1 and outcome.succeeded
                and self.jobs.fits(len(outcome.sends)))

    def _planned_commit(
        self, graph: CompiledStateGraph, record: RunRecord, outcome: TaskOutcome, hold: bool
    ) -> tuple[Commit | None, Move | None]:
        """The commit to make with the post of the outcome, as the orchestrator would once
        told: its wake-up and its read of the run are then off the path from one superstep to
        the next. It is the move on to the next step with its jobs (`MovePlanner.plan`), which
        comes second too (and to `hold`, this worker takes the next step's job with it when
        that step has one task: no other worker's wake-up and read either), or the run's end.
        (None, None) when the run stops there, or the next step's jobs go apart: the post tells
        the orchestrator, as it does when the commit finds the run moved by another process or
        being cancelled."""
        if not self._moves_on(record, outcome):
            return None, None
        try:
            plan = self.planner.plan(graph, record, {outcome.task_id: outcome}, hold)
        except Exception:  # a reducer that raised: the orchestrator fails the run with it
            return None, None
        if plan.move is not None:
            return (plan.move.commit, plan.move) if plan.move.enqueues else (None, None)
        return plan.end, None

    def _job_end(self, arq_job: ArqJob | None) -> ScriptCall | None:
        """arq's end of a job whose task is done: what arq's run_job would do in a round trip
        of its own once the node returned (it does not for a job in `ended`, see
        GraphWorker.finish_job). Without arq's result: nobody reads it (see `finish_job` in
        the scripts)."""
        if arq_job is None:
            return None
        return self.jobs.finish_call(arq_job.job_id, b"", 0)

    async def _hand_back(self, job: protocol.TaskJob, claim: Claim) -> None:
        """A stopping worker gives its task back: the start does not count as lost (arq puts
        the job back in the queue, and `GraphWorker.finish_job` lists it as ready again)."""
        try:
            tag = protocol.tag_of(job.run_id)
            await self.store.end_attempt(tag, job.checkpoint_id, job.task_id, claim, failed=False)
        except Exception as exc:  # Redis gone: the lease runs out and the task is re-run anyway
            log.warning("could not hand back task %s of run %s: %s", job.task_id, job.run_id, exc)

