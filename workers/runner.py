"""Executing one task job: the node of one task of one run, or a task call of an entrypoint.

`NodeRunner.run_job` is the arq function of every job (`protocol.TaskJob`). It reads the run's
checkpoint, claims an attempt at the task, runs the node (and its conditional edges) and posts
the outcome, with the run's move on to its next step (or its end) when the task was its
step's only one (planned by `arqgraph.storage.moves`); the orchestrator does the rest. A job that is garbage,
stale, a duplicate, or for a graph this worker did not load is logged and dropped, and the
worker keeps serving. How jobs reach it (the ready list, leases, hand-back) is `arqgraph.workers.worker`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import pydantic
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import serialize_result
from arq.utils import timestamp_ms, to_unix_ms
from arq.worker import Retry

from arqgraph import observe, protocol
from arqgraph.core.calls import current_scheduler
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
from arqgraph.observe import logs
from arqgraph.protocol import RunRecord
from arqgraph.runtime import ExecutionInfo, Runtime, server_info
from arqgraph.storage.commits import Commit
from arqgraph.storage.connection import Backoff, job_serializer, lost_redis
from arqgraph.storage.dead_letters import set_aside
from arqgraph.storage.ends import EndWatch
from arqgraph.storage.long_term import RedisStore
from arqgraph.storage.moves import Move, MovePlanner, recursion_limit, task_event
from arqgraph.storage.namespaces import task_uuid
from arqgraph.storage.node_cache import RedisCache
from arqgraph.storage.queue import RESULT_KEPT_S, JobQueue, ScriptCall, TakenJob
from arqgraph.storage.runs import Claim, Posted, RedisFullError, RunStore
from arqgraph.types import asked_of
from arqgraph.workers.calls import CallScheduler, Idle, close_scheduler, is_call, no_idle, run_call
from arqgraph.workers.executor import TaskResult, UnknownNodeError, execute_task
from arqgraph.workers.task_stream import TaskStream, traced
from arqgraph.workers.timeouts import heartbeat

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph
    from arqgraph.graph.state import NodeSpec

RUN_SLOTS = "~run:"  # (the slots of a run's `max_concurrency`, beside its nodes' own)


def run_slot(key: str) -> str:
    """The name under which a job holds its run's slot (its node's slot goes by its key)."""
    return f"{key}{RUN_SLOTS}"


log = logging.getLogger("arqgraph.worker")
CANCELS_KEPT = 10_000  # cancelled runs a worker remembers (see `cancel_runs`)


def has_limits(graph: CompiledStateGraph) -> bool:
    return any(spec.concurrency is not None or spec.rate_interval is not None
               for spec in graph.nodes.values())


class ArqJob(NamedTuple):
    """What arq's run_job knows of the job it runs, to end the job as arq would."""

    job_id: str
    tries: int
    enqueued_ms: int
    started_ms: int
    payload: dict[str, Any]
    due_ms: int = 0  # its queue score: when it came due (a retry's, after its backoff)


DONE = "done"  # what a job whose task's outcome was recorded returns
HandOver = Callable[[str, TakenJob], None]  # (the job that posted, the job its post took)


class NodeRunner:
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
        started_ms = timestamp_ms()
        try:
            job = protocol.TaskJob.model_validate(payload)
        except pydantic.ValidationError as exc:
            job_id = str(ctx.get("job_id", ""))
            await self.refuse_poison(job_id, job_key_prefix + job_id,
                                     f"its payload is not a task: {exc}", repr(payload).encode())
            observe.current().job_refused("", "ValidationError")
            return "rejected: bad payload"
        logs.enter(run_id=job.run_id, graph=job.graph)  # (this job's task: its lines name them)
        graph = find_graph(self.graphs, job.graph)
        if graph is not None and job.graph not in self.graphs and has_limits(graph):
            self.limited.add(job.graph)  # (a subgraph's: claimed late from now on)
        if graph is None:
            return await self._refuse(job, LookupError(
                f"this worker does not serve graph {job.graph!r} (it serves {sorted(self.graphs)})"
            ), poison=str(ctx.get("job_id", "")))
        if job.fingerprint != graph.fingerprint:
            return await self._refuse(job, GraphMismatchError(
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
            return await self._refuse(job, SerializationError(
                f"run {job.run_id} cannot be read here: {record.unreadable}"), claim or None)
        checkpoint = record.checkpoint if record else None
        if record is None or checkpoint is None or record.status != "running":
            return "skipped: run is not running"
        if record.cancel_requested:
            return "skipped: run is cancelled"
        if record.checkpoint_id != job.checkpoint_id:
            return "skipped: stale step"
        if is_call(job.task_id):  # a @task call of a Functional API entrypoint
            return await self._cancellable(str(ctx.get("job_id", job.task_id)), run_call(
                self.store, job, record, self.threads, self.node_timeout, self._store(graph),
                self._cache(graph)))
        task = checkpoint.task(job.task_id)
        if task is None:
            return await self._refuse(job, UnknownNodeError(f"no task {job.task_id} in this step"),
                                      poison=str(ctx.get("job_id", "")))
        key = str(ctx.get("job_id", job.task_id))
        spec = graph.nodes.get(task.node)
        if spec is not None:
            await self._wait_for_limits(job, spec, key)
        await self._wait_for_run_slot(job, record, key, claim)
        arq_job = None
        if "job_id" in ctx:
            arq_job = ArqJob(ctx["job_id"], ctx["job_try"], to_unix_ms(ctx["enqueue_time"]),
                             started_ms, payload, ctx.get("score") or 0)
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

    async def _wait_for_limits(self, job: protocol.TaskJob, spec: NodeSpec, key: str) -> None:
        """Send the job back to the queue (arq's Retry: no worker slot held while it waits) until
        the node's rate limit lets it start and one of its concurrency slots is free."""
        interval = spec.rate_interval
        if interval is not None:
            wait = await self.store.limits.rate_wait(job.graph, spec.name, key, interval)
            if wait > 0:
                raise Retry(defer=wait)
        if spec.concurrency is not None:
            if not await self.store.limits.acquire_slot(job.graph, spec.name, key,
                                                        spec.concurrency, self.lease):
                raise Retry(defer=random.uniform(0.02, 0.1))
            self.slots[key] = protocol.slots_key(job.graph, spec.name)

    async def _wait_for_run_slot(self, job: protocol.TaskJob, record: RunRecord, key: str,
                                 claim: Claim | None | Literal[False]) -> None:
        """A run given `max_concurrency` in its config runs at most that many tasks at once,
        pool-wide, as LangGraph's: a job finding them all taken hands its task back and
        goes back to the queue (no worker slot held while it waits)."""
        limit = record.config.get("max_concurrency")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            return
        node = f"{RUN_SLOTS}{job.run_id}"
        held = run_slot(key)  # (its member in the slots, renewed by the lease keeper under it)
        if not await self.store.limits.acquire_slot(job.graph, node, held, limit, self.lease):
            if claim:
                await self.store.end_attempt(record.tag, job.checkpoint_id, job.task_id, claim,
                                             failed=False)
            raise Retry(defer=random.uniform(0.02, 0.1))
        self.slots[held] = protocol.slots_key(job.graph, node)

    async def _run_task(
        self, job: protocol.TaskJob, record: RunRecord, graph: CompiledStateGraph, task: Task,
        key: str, claim: Claim | None | Literal[False], arq_job: ArqJob | None,
    ) -> str:
        if claim is False:  # not claimed with the load (see `run_job`)
            claim = await self.store.claim_task(record.tag, job.checkpoint_id, job.task_id)
        if claim is None:
            return "skipped: already done"
        if claim.lost >= self.crash_limit:
            return await self._refuse(job, TaskLostError(
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
            execution = asyncio.create_task(self._execute(job, record, graph, task, claim, first))
            self.running[key] = execution
            try:
                result = await execution
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if me is not None and me.cancelling():  # the worker is stopping: hand it back
                    execution.cancel()
                    await asyncio.shield(self._hand_back(job, claim))
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
        if outcome.interrupts:
            asked = asked_of(outcome.interrupts)
            if asked:  # (a breakpoint inside a subgraph asks nothing: the run's stop tells it)
                events.append(("updates", {"__interrupt__": asked}))
                assert record.checkpoint is not None
                events.append(("values", {**graph.schema.output(record.checkpoint.values),
                                          "__interrupt__": asked}))
        elif outcome.error is None and task.node != START:
            update = {result.shown_as or task.node: result.shown}
            events.append(("updates", {**update, "__metadata__": {"cached": True}}
                           if result.cached else update))
        if record.records("tasks") and task.node != START:  # (its start: see TaskStream)
            events.append(traced(task_event(
                task, job.step, task_uuid(record, job.checkpoint_id, task.id),
                error=protocol.encode_error(outcome.error) if outcome.error else None,
                result=shown_writes(outcome.writes) if outcome.succeeded else {},
                interrupts=[dataclasses.asdict(i) for i in asked_of(outcome.interrupts)]),
                result.traced))
        hand_over = self.hand_over if arq_job is not None and job.graph not in self.limited else None
        commit, move = self._planned_commit(graph, record, outcome, hand_over is not None)
        try:
            posted = await self._post(job, outcome, events, claim, arq_job, commit,
                                      move if move is not None and move.held else None, ran)
        except Exception as exc:  # too large, unserializable, or Redis out of memory: fail visibly
            failed = TaskOutcome(task.id, task.node, error=ErrorInfo.of(exc, task.node))
            move = None
            posted = await self._post(job, failed, (), claim, arq_job, ran=ran)
        if posted.code > 0:
            if arq_job is not None:
                self.ended.add(arq_job.job_id)
            if posted.code == 3 and move is not None:  # the post moved the run on
                self.store.remember_run(move.moved)
                if posted.next_job is not None and hand_over is not None and arq_job is not None:
                    self.started[posted.next_job.job_id] = (move.moved, posted.next_claim)
                    hand_over(arq_job.job_id, posted.next_job)
            return DONE
        said = {0: "skipped: another attempt won",
                -1: "fenced: a newer attempt owns it"}[posted.code]
        log.info("task %s of run %s: %s", task.id, job.run_id, said)
        return said

    async def _execute(
        self, job: protocol.TaskJob, record: RunRecord, graph: CompiledStateGraph, task: Task,
        claim: Claim, first_attempt_time: float,
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
        scheduler.sent = stream.emit.sent
        current_scheduler.set(scheduler)
        try:
            result = await execute_task(
                graph, record.checkpoint, task, config, runtime, self.threads,
                attempt=claim.failures + 1, default_timeout=self.node_timeout,
                resume=claim.resume, interrupt_ids=f"{record.tag}:{job.checkpoint_id}:{task.id}",
                stop=record.first_step + recursion_limit(record),
                cache=self._cache(graph),
                started=stream.started,
            )
        except BaseException:
            await close_scheduler(scheduler)
            raise
        await close_scheduler(scheduler, settle=True)
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

    async def _post(
        self, job: protocol.TaskJob, outcome: TaskOutcome, events: Sequence[tuple[Any, Any]],
        claim: Claim, arq_job: ArqJob | None, commit: Commit | None = None,
        hold: Move | None = None, ran: tuple[str, float, float] | None = None,
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
                    self.max_update_bytes, self._job_end(arq_job), commit, held, ran,
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
        """arq's end of a job whose task is done, its result the DONE that `run_job` returns:
        what arq's run_job would do in a round trip of its own once the node returned (it does
        not for a job in `ended`, see GraphWorker.finish_job)."""
        if arq_job is None:
            return None
        job_id = arq_job.job_id
        result = serialize_result(
            protocol.TASK_FUNCTION, (), arq_job.payload, arq_job.tries, arq_job.enqueued_ms,
            True, DONE, arq_job.started_ms, timestamp_ms(), f"{job_id}:{protocol.TASK_FUNCTION}",
            self.jobs.name, job_id, serializer=job_serializer,
        )
        assert result is not None  # (None only when the result cannot be serialized)
        return self.jobs.finish_call(job_id, result, RESULT_KEPT_S * 1000)

    async def _hand_back(self, job: protocol.TaskJob, claim: Claim) -> None:
        """A stopping worker gives its task back: the start does not count as lost (arq puts
        the job back in the queue, and `GraphWorker.finish_job` lists it as ready again)."""
        try:
            tag = protocol.tag_of(job.run_id)
            await self.store.end_attempt(tag, job.checkpoint_id, job.task_id, claim, failed=False)
        except Exception as exc:  # Redis gone: the lease runs out and the task is re-run anyway
            log.warning("could not hand back task %s of run %s: %s", job.task_id, job.run_id, exc)

    async def refuse_poison(self, job_id: str, where: str, why: str, data: bytes) -> None:
        """A job that cannot be read (`where`: its key): set it aside, and fail the task its id
        names (and so its run), with CorruptDataError saying why."""
        task = protocol.task_of_job(job_id)
        await set_aside(self.store.redis, where, why, data, task[0] if task else "")
        if task is None:
            return
        run_id, checkpoint_id, task_id = task
        try:
            record = await self.store.load_run(run_id)
        except CorruptDataError:  # (its orchestrator sets the record aside and fails the run)
            return
        if record is None or record.status != "running":
            return
        job = protocol.TaskJob(run_id=run_id, checkpoint_id=checkpoint_id, step=-1,
                               task_id=task_id, graph=record.graph, fingerprint="")
        await self._refuse(job, CorruptDataError(f"job {job_id} at {where}: {why}"))

    async def _refuse(
        self, job: protocol.TaskJob, exc: Exception, claim: Claim | None = None,
        poison: str = "",
    ) -> str:
        """Fail the job's task (and so its run) with `exc`; `poison`: the id of a job naming
        what does not exist here (a graph, a task), which is set aside as a dead letter."""
        if poison:
            await set_aside(self.store.redis, job_key_prefix + poison, str(exc),
                            job.model_dump_json().encode(), job.run_id)
        else:
            log.error("job for run %s task %s refused: %s", job.run_id, job.task_id, exc)
        observe.current().job_refused(job.graph, type(exc).__name__)
        node = job.task_id.split(":")[-1]
        outcome = TaskOutcome(job.task_id, node, error=ErrorInfo.of(exc, node))
        if await self.store.load_run(job.run_id) is not None:
            await self.store.post_outcome(
                job.graph, job.run_id, job.checkpoint_id, outcome, (), claim
            )
        return f"refused: {exc}"

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
