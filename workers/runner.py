"""Executing one task job: the node of one task of one run, or a task call of an entrypoint.

`NodeRunner.run_job` is the arq function of every job (`protocol.TaskJob`). It reads the run's
checkpoint, claims an attempt at the task, runs the node (and its conditional edges) and posts
the outcome (`arqgraph.workers.posting`), with the run's move on to its next step (or its
end) when the task was its step's only one; the orchestrator does the rest. A job that is
garbage, stale, a duplicate, or for a graph this worker did not load is refused
(`arqgraph.workers.refusals`) or dropped, and the worker keeps serving. Node limits wait in
the queue (`arqgraph.workers.node_limits`). How jobs reach it (the ready list, leases,
hand-back) is `arqgraph.workers.worker`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.utils import timestamp_ms, to_unix_ms
from arq.worker import Retry

from arqgraph import observe, protocol
from arqgraph.constants import END
from arqgraph.core.graphs import find_graph
from arqgraph.core.pregel import START, Task, TaskOutcome, shown_writes
from arqgraph.core.schema import coerce_context
from arqgraph.errors import (
    CorruptDataError,
    ErrorInfo,
    GraphInterrupt,
    GraphMismatchError,
    SerializationError,
    TaskLostError,
)
from arqgraph.interrupts import asked_of
from arqgraph.observe import logs
from arqgraph.protocol import InboxNote, RunRecord
from arqgraph.runtime import ExecutionInfo, Runtime, server_info
from arqgraph.storage.ends import EndWatch
from arqgraph.storage.long_term import RedisStore
from arqgraph.storage.moves import MovePlanner, durable_steps, recursion_limit, task_event
from arqgraph.storage.namespaces import task_uuid
from arqgraph.storage.node_cache import RedisCache
from arqgraph.storage.queue import JobEnd, JobQueue, ScriptCall, TakenJob
from arqgraph.storage.runs import Claim, RunStore
from arqgraph.workers.attempts import answered_ids, failed_before
from arqgraph.workers.calls import CallScheduler, CallsMadeBy, Idle, is_call, no_idle, run_call
from arqgraph.workers.executor import TaskResult, UnknownNodeError, execute_task
from arqgraph.workers.node_limits import has_limits, run_slot, wait_for_limits, wait_for_run_slot
from arqgraph.workers.posting import DONE, ArqJob, HandOver, OutcomePoster, sole_task
from arqgraph.workers.refusals import refuse, refuse_poison
from arqgraph.workers.task_stream import TaskStream, traced
from arqgraph.workers.timeouts import heartbeat

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph

log = logging.getLogger("arqgraph.worker")
CANCELS_KEPT = 10_000  # cancelled runs a worker remembers (see `cancel_runs`)
STALE = "skipped: stale step"  # what `run_job` says of a job of a step its run left
FENCED = "fenced: a newer attempt owns it"  # and of one whose attempt a newer one replaced


class NodeRunner(OutcomePoster):
    """Executes the tasks of the graphs this worker loaded.

    Each execution claims a new attempt at its task first; only the attempt that owns the task
    may post its outcome, so a worker that lost its lease (frozen, partitioned) and finishes late
    changes nothing. A failure that its retry policy retries goes back to the queue with a delay
    (arq's `Retry`), so the wait holds no worker slot.
    """

    def __init__(
        self, redis: ArqRedis, graphs: Sequence[CompiledStateGraph], threads: int, *,
        node_timeout: float | None = None, crash_limit: int = 5,
        max_update_bytes: int = protocol.MAX_UPDATE_BYTES, queue: str = protocol.DEFAULT_QUEUE,
        lease: float = 5.0, shared_cache: bool = True,
    ) -> None:
        self.store = RunStore(redis)
        # Node results are cached where every worker finds them, or, embedded, in the cache
        # the graph was compiled with (the caller's own object).
        self.shared_cache = RedisCache(redis) if shared_cache else None
        self.stores: dict[str, RedisStore] = {}  # the shared long-term stores, per graph
        self.ends = EndWatch(self.store)  # the ends of the subgraph runs its tasks wait for
        self.jobs = JobQueue(redis, queue)  # the worker takes jobs from it; task calls go to it
        self.graphs = {g.name: g for g in graphs}
        self.threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="arqgraph-node")
        self.node_timeout = node_timeout
        self.crash_limit = crash_limit
        self.max_update_bytes = max_update_bytes
        self.running: dict[str, asyncio.Future[Any]] = {}  # arq job id -> node or call
        self.cancelled: dict[str, None] = {}  # runs lately cancelled, oldest first
        self.slots: dict[str, str] = {}  # arq job id -> the concurrency slots key it holds one of
        self.lease = lease
        self.idle: Idle = no_idle  # gives the worker's slot back while a node awaits other jobs
        # runs a job that a post took (GraphWorker.hand_over); None while the worker takes none
        self.hand_over: HandOver | None = None
        self.giving_back: set[asyncio.Future[None]] = set()  # (see `give_back_soon`)
        self.ended: set[str] = set()  # jobs that the post of their outcome ended (arq need not)
        # job id -> how it ends without its task's outcome, and its graph (see `run_job`)
        self.ending: dict[str, tuple[JobEnd, str]] = {}
        self.redriven: dict[str, None] = {}  # jobs `redrive` told of, oldest first
        # jobs taken with their task started: the run's record and the task's claim
        self.started: dict[str, tuple[RunRecord | None, Claim | None | Literal[False]]] = {}
        # graphs with node limits: their tasks are claimed once a limit lets them start
        self.limited = {g.name for g in graphs if has_limits(g)}
        # plans the moves it makes with its posts (see `_planned_commit`)
        self.planner = MovePlanner(self.jobs)
        self.worker_id = ""  # its worker's heartbeat id, told with each outcome (dashboard)

    async def take(self, job_ids: Sequence[str], lease: float, most: int) -> list[TakenJob]:
        """Take up to `most` of these jobs (JobQueue.take) and start their tasks in the same
        round trip: the run of each is read, its task claimed (except task calls and the tasks
        of graphs with node limits: `run_job` claims them once it may start them), and kept in
        `started` for `run_job`."""
        starts: list[ScriptCall | None] = []
        known: dict[str, tuple[str, RunRecord | None]] = {}  # job id -> run id, record kept
        for job_id in job_ids:
            task = protocol.task_of_job(job_id)
            if task is None:
                starts.append(None)
                continue
            run_id, checkpoint_id, task_id = task
            call, record = self.store.start_call(
                run_id, checkpoint_id, "" if is_call(task_id) else task_id)
            known[job_id] = (run_id, record)
            starts.append(call)
        taken = await self.jobs.take(job_ids, lease, most, starts, sorted(self.limited))
        records: dict[str, RunRecord] = {}  # a run read with one job is not sent with the next
        for job in taken:
            if job.started is None:
                continue
            run_id, kept = known[job.job_id]
            try:
                record, claim = await self.store.read_start(
                    run_id, job.started, records.get(run_id) or kept)
            except Exception as exc:  # a garbled run: its job fails as a job, in `run_job`
                log.error("job %s: could not read its run %s: %r", job.job_id, run_id, exc)
                continue
            if record is not None:
                records[run_id] = record
            self.started[job.job_id] = (record, claim)
        return taken

    async def run_job(self, ctx: dict[str, Any], **payload: Any) -> str:
        """arq's function of every job: its task run, or refused or skipped. How a job that
        ends without its task's outcome is to end is kept in `ending` (see FINISH_JOB_SCRIPT):
        taken for stale, having started no attempt of its task, it ends without arq's result,
        to be enqueued again at once; fenced (a newer attempt owns its task), it stays queued if
        its hold lapsed. Any other, as arq ends a job."""
        said = await self._run_job(ctx, **payload)
        job_id = ctx.get("job_id")
        if job_id and job_id not in self.ended and protocol.task_of_job(job_id) is not None:
            if said == STALE:
                self.ending[job_id] = ("redrive", str(payload.get("graph", "")))
            elif said == FENCED:
                self.ending[job_id] = ("fenced", "")
        return said

    async def redrive(self, job_id: str, graph: str) -> None:
        """Tell the orchestrators that a job ended without its task's outcome and without
        arq's result, for its run's advance to enqueue it again at once if the run still
        waits on it (the worker took it for stale: the sweep would find it later). Once per
        job id: a job that keeps ending so is left to the sweep, which backs off, so that no
        two processes can bounce it between them."""
        task = protocol.task_of_job(job_id)
        if task is None or not graph or job_id in self.redriven:
            return
        self.redriven[job_id] = None
        while len(self.redriven) > CANCELS_KEPT:
            del self.redriven[next(iter(self.redriven))]
        await self.store.events.notify(graph, InboxNote(kind="task_done", run_id=task[0]))

    async def _run_job(self, ctx: dict[str, Any], **payload: Any) -> str:
        started_ms = timestamp_ms()
        try:
            job = protocol.TaskJob.model_validate(payload)
        except pydantic.ValidationError as exc:
            job_id = str(ctx.get("job_id", ""))
            await refuse_poison(self.store, job_id, job_key_prefix + job_id,
                                f"its payload is not a task: {exc}", repr(payload).encode())
            observe.current().job_refused("", "ValidationError")
            return "rejected: bad payload"
        logs.enter(run_id=job.run_id, graph=job.graph)  # (this job's task: its lines name them)
        graph = find_graph(self.graphs, job.graph)
        if graph is not None and job.graph not in self.graphs and has_limits(graph):
            self.limited.add(job.graph)  # (a subgraph's: claimed late from now on)
        if graph is None:
            return await refuse(self.store, job, LookupError(
                f"this worker does not serve graph {job.graph!r} (it serves {sorted(self.graphs)})"
            ), poison=str(ctx.get("job_id", "")))
        if job.fingerprint != graph.fingerprint:
            return await refuse(self.store, job, GraphMismatchError(
                f"task {job.task_id} of run {job.run_id} was planned for graph {job.graph!r} "
                f"with fingerprint {job.fingerprint}, but this worker has {graph.fingerprint}; "
                "refusing to mix versions"
            ))
        claim: Claim | None | Literal[False] = False
        started = self.started.pop(ctx.get("job_id", ""), None)
        if started is not None and protocol.task_of_job(ctx["job_id"]) == (
                job.run_id, job.checkpoint_id, job.task_id):
            record, claim = started  # (see `take`)
        else:
            try:
                if job.graph in self.limited or is_call(job.task_id):  # claimed later, if at all
                    record = await self.store.load_run(job.run_id)
                else:
                    record, claim = await self.store.start_task(
                        job.run_id, job.checkpoint_id, job.task_id)
            except CorruptDataError:  # (its orchestrator sets the record aside, fails the run)
                return "skipped: the run's record is garbled"
        if record is not None and record.unreadable and record.status == "running":
            return await refuse(self.store, job, SerializationError(
                f"run {job.run_id} cannot be read here: {record.unreadable}"), claim or None)
        checkpoint = record.checkpoint if record else None
        if record is None or checkpoint is None or record.status != "running":
            return "skipped: run is not running"
        if record.cancel_requested:
            return "skipped: run is cancelled"
        if record.checkpoint_id != job.checkpoint_id:
            return STALE
        if is_call(job.task_id):  # a @task call of a Functional API entrypoint
            def scheduler_for(claim: Claim, name: str) -> CallScheduler:  # (its own calls')
                return CallScheduler(self.store, record, job.checkpoint_id, job.task_id,
                                     self.jobs, self.idle, name, claim.failures + 1, self.ends,
                                     claim.attempt)

            return await self._cancellable(str(ctx.get("job_id", job.task_id)), run_call(
                self.store, job, record, self.threads, self.node_timeout, self._store(graph),
                self._cache(graph), scheduler_for))
        task = checkpoint.task(job.task_id)
        if task is None:
            return await refuse(self.store, job, UnknownNodeError(
                f"no task {job.task_id} in this step"), poison=str(ctx.get("job_id", "")))
        key = str(ctx.get("job_id", job.task_id))
        spec = graph.nodes.get(task.node)
        if spec is not None:
            await wait_for_limits(self.store, self.slots, job, spec, key, self.lease)
        await wait_for_run_slot(self.store, self.slots, job, record, key, claim, self.lease)
        arq_job = None
        if "job_id" in ctx:
            arq_job = ArqJob(ctx["job_id"], to_unix_ms(ctx["enqueue_time"]), started_ms,
                             ctx.get("score") or 0)
        try:
            return await self._run_task(job, record, graph, task, key, claim, arq_job)
        finally:
            for held in (key, run_slot(key)):
                if (slots := self.slots.pop(held, None)) is not None:
                    with contextlib.suppress(Exception):  # else the slot's lease runs out
                        await self.store.limits.release(slots, held)

    async def _cancellable(self, key: str, call: Coroutine[Any, Any, str]) -> str:
        """Run a task call where `cancel_runs` finds it (by its job's id or its run's)."""
        execution = asyncio.ensure_future(call)
        self.running[key] = execution
        try:
            return await execution
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():  # the worker is stopping
                execution.cancel()
                raise
            return "cancelled"
        finally:
            self.running.pop(key, None)

    async def _run_task(
        self, job: protocol.TaskJob, record: RunRecord, graph: CompiledStateGraph, task: Task,
        key: str, claim: Claim | None | Literal[False], arq_job: ArqJob | None,
    ) -> str:
        if claim is False:  # not claimed with the load (see `run_job`)
            claim = await self.store.claim_task(record.tag, job.checkpoint_id, job.task_id)
        if claim is None:
            return "skipped: already done"
        if claim.lost >= self.crash_limit:
            return await refuse(self.store, job, TaskLostError(
                f"task {task.id} (node {task.node!r}) of run {job.run_id} was started "
                f"{claim.lost} times and never finished: its worker died or lost its lease each "
                "time (a crash, an out-of-memory kill, or a node that takes the process down)"
            ), claim)

        # (a retry is the same arq job, enqueued again: its first enqueue time stays)
        first = arq_job.enqueued_ms / 1000 if arq_job is not None else time.time()
        attempt = observe.Attempt(
            job.graph, task.node, claim.failures + 1, job.run_id,
            protocol.split_thread(record.thread_id)[0], job.step,
            (arq_job.started_ms - arq_job.due_ms) / 1000 if arq_job and arq_job.due_ms else None)
        if job.run_id in self.cancelled:  # (cancelled since its run was read)
            return "skipped: run is cancelled"
        began = time.time()
        with observe.node_attempt(attempt, job.trace):  # (its metrics, span and log context)
            handled: list[ErrorInfo] = []  # (its node's error, once its error handler runs)
            execution = asyncio.create_task(self._execute(job, record, graph, task, claim, first,
                                                          handled))
            self.running[key] = execution
            try:
                result = await execution
            except asyncio.CancelledError:
                me = asyncio.current_task()
                stopping = me is not None and me.cancelling() > 0  # (the worker is stopping)
                if stopping:
                    execution.cancel()
                # A node that failed, its error handler stopped with its run: its error is
                # kept, so that a resume runs the handler only, as LangGraph's. Otherwise a
                # stopping worker hands its task back, for another to run while the run goes on.
                if handled and (not stopping or await asyncio.shield(
                        self.store.status(job.run_id)) != "running"):
                    await asyncio.shield(self.post_handled(job, task, handled[0], claim,
                                                            arq_job, record, began))
                elif stopping:
                    await asyncio.shield(self._hand_back(job, claim))
                if stopping:
                    raise
                attempt.outcome = "cancelled"
                return "cancelled: the run was cancelled"  # the node saw CancelledError
            finally:
                self.running.pop(key, None)
            error = result.outcome.error
            if error is not None:
                attempt.failed(error.type, error.message, result.retry_after is not None)
            elif result.outcome.interrupts:
                attempt.outcome = "interrupted"
        ran = (self.worker_id, began, time.time() - began)
        if result.retry_after is not None:
            await self.store.end_attempt(record.tag, job.checkpoint_id, job.task_id, claim,
                                         failed=True)
            raise Retry(defer=result.retry_after)
        events: list[tuple[Any, Any]] = []
        outcome = result.outcome
        if not durable_steps(record):  # (its snapshots hide it once the run moves on)
            outcome = dataclasses.replace(outcome, posted_by=record.run_id)
        if outcome.interrupts:
            asked = asked_of(outcome.interrupts)
            if asked:  # (a breakpoint inside a subgraph asks nothing: the run's stop tells it)
                events.append(("updates", {"__interrupt__": asked}))
                assert record.checkpoint is not None
                events.append(("values", {**graph.schema.output(record.checkpoint.values),
                                          "__interrupt__": asked}))
        elif outcome.error is None and task.node != START and record.records("updates"):
            update = {result.shown_as or task.node: result.shown}
            events.append(("updates", {**update, "__metadata__": {"cached": True}}
                           if result.cached else update))
        if record.records("tasks") and task.node != START:  # (its start: see TaskStream)
            events.append(traced(task_event(
                task, job.step, task_uuid(record, job.checkpoint_id, task.id),
                error=protocol.encode_error(outcome.error) if outcome.error else None,
                result=(shown_writes(outcome.writes) if not graph.returns_value else
                        {END: (outcome.writes or {}).get("output")}) if outcome.succeeded else {},
                interrupts=[dataclasses.asdict(i) for i in asked_of(outcome.interrupts)]),
                result.traced))
        hand_over = self.hand_over if arq_job is not None and job.graph not in self.limited else None
        commit, move = self._planned_commit(graph, record, outcome, hand_over is not None)
        sole = sole_task(record)
        try:
            posted = await self._post(job, outcome, events, claim, arq_job, commit,
                                      move if move is not None and move.held else None, ran, sole)
        except Exception as exc:  # too large, unserializable, or Redis out of memory: fail visibly
            failed = TaskOutcome(task.id, task.node, error=ErrorInfo.of(exc, task.node))
            move = None
            posted = await self._post(job, failed, (), claim, arq_job, ran=ran, sole=sole)
        if posted.code > 0:
            if arq_job is not None:
                self.ended.add(arq_job.job_id)
            if posted.code == 3 and move is not None:  # the post moved the run on
                self.store.remember_run(move.moved)
                if posted.next_job is not None and hand_over is not None and arq_job is not None:
                    self.started[posted.next_job.job_id] = (move.moved, posted.next_claim)
                    hand_over(arq_job.job_id, posted.next_job)
            return DONE
        said = {0: "skipped: another attempt won", -1: FENCED}[posted.code]
        log.info("task %s of run %s: %s", task.id, job.run_id, said)
        return said

    async def _execute(
        self, job: protocol.TaskJob, record: RunRecord, graph: CompiledStateGraph, task: Task,
        claim: Claim, first_attempt_time: float, handled: list[ErrorInfo],
    ) -> TaskResult:
        stream = TaskStream(self.store, record, job, task, graph.spec.joins,
                            getattr(graph.nodes.get(task.node), "trace_policy", None),
                            entrypoint=graph.returns_value)
        config = stream.node_config(dict(record.config))
        try:  # (a producer that submits by name sends the context unchecked)
            context = coerce_context(graph.context_schema, record.context)
        except Exception as exc:
            await stream.close()
            return TaskResult(TaskOutcome(task.id, task.node, error=ErrorInfo.of(exc, task.node)))
        configurable = record.config.get("configurable") or {}
        info = ExecutionInfo(
            checkpoint_id=job.checkpoint_id, checkpoint_ns=stream.namespace(),
            task_id=stream.task_id(), run_id=record.config.get("run_id"),
            thread_id=protocol.split_thread(record.thread_id)[0] if record.keep else None,
            node_attempt=claim.failures + 1, node_first_attempt_time=first_attempt_time)
        runtime: Runtime[Any] = Runtime(
            context=context, stream_writer=stream.custom, heartbeat=heartbeat,
            store=self._store(graph),
            execution_info=info, server_info=server_info(configurable), control=stream.control)
        assert record.checkpoint is not None
        scheduler = CallScheduler(self.store, record, job.checkpoint_id, task.id, self.jobs,
                                  self.idle, task.node, claim.failures + 1, self.ends,
                                  claim.attempt)
        answered = await answered_ids(self.store, graph, record, job, task, claim)
        try:
            async with CallsMadeBy(scheduler, stream.emit):
                result = await execute_task(
                    graph, record.checkpoint, task, config, runtime, self.threads,
                    attempt=claim.failures + 1, default_timeout=self.node_timeout,
                    resume=claim.resume,
                    interrupt_ids=f"{record.tag}:{job.checkpoint_id}:{task.id}",
                    stop=record.first_step + recursion_limit(record),
                    cache=self._cache(graph),
                    started=stream.started,
                    failed_before=await failed_before(self.store, graph, record, job, task, claim),
                    answered=answered, handling=handled.append,
                )
        except asyncio.CancelledError:
            stream.emit.stop()  # (its sender ends once it sent what the node told)
            raise
        spec = graph.nodes.get(task.node)
        inner = spec is not None and getattr(spec.fn, "streams_inside", False)
        result = stream.traced_result(result)
        outcome = result.outcome
        # (a subgraph's messages streamed from its own nodes: not again from the node's)
        await stream.close(outcome.writes if outcome.succeeded else None, told=not inner,
                           error=None if outcome.succeeded else _error_of(outcome),
                           traced_writes=result.traced)
        return result

    def _cache(self, graph: CompiledStateGraph) -> Any:
        """The graph's node cache: on a cluster the one in Redis, embedded the graph's own;
        None when the graph was compiled without one."""
        return None if graph.cache is None else self.shared_cache or graph.cache

    def _store(self, graph: CompiledStateGraph) -> Any:
        """The graph's long-term memory store: on a cluster the one in Redis every worker
        shares (with the index and TTLs of the store the graph was compiled with), embedded
        the graph's own."""
        store = getattr(graph, "store", None)
        if store is None or self.shared_cache is None:
            return store
        if graph.name not in self.stores:
            self.stores[graph.name] = RedisStore(
                self.jobs.redis, index=getattr(store, "index_config", None),
                ttl=getattr(store, "ttl_config", None))
        return self.stores[graph.name]

    def cancel_runs(self, ids: set[str]) -> None:
        """Cancel the running nodes and calls of these runs (called on the worker's loop), and
        keep their jobs taken but not started yet from starting. An id may also be a job's:
        a task call cancelled alone (its job is skipped by `run_call` if it has not started)."""
        run_ids = {i for i in ids if protocol.task_of_job(i) is None}
        for run_id in run_ids:
            self.cancelled[run_id] = None
        while len(self.cancelled) > CANCELS_KEPT:
            del self.cancelled[next(iter(self.cancelled))]
        for job, execution in list(self.running.items()):
            if job in ids or protocol.run_of_job(job) in run_ids:
                execution.cancel()


def _error_of(outcome: TaskOutcome) -> BaseException:
    """What ended a task that did not succeed: its error, else its interrupts."""
    if outcome.error is not None:
        return outcome.error.rebuild()
    return GraphInterrupt(tuple(asked_of(outcome.interrupts)))
