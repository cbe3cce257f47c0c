"""The arq worker that executes graph nodes.

Each arq job names one task of one run (`protocol.TaskJob`). The worker reads the run's
checkpoint, runs the node (and its conditional edges), and posts the outcome; the orchestrator
does the rest. A job that is garbage, stale, a duplicate, or for a graph this worker did not
load is logged and dropped, and the worker keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import pydantic
from arq.connections import ArqRedis
from arq.utils import timestamp_ms
from arq.worker import Retry, Worker, func
from redis.exceptions import ResponseError

from shared import codec, protocol
from shared.connection import job_deserializer, job_serializer, lost_redis
from shared.errors import ErrorInfo, GraphMismatchError, TaskLostError
from shared.func import current_scheduler
from shared.graph.compiled import CompiledStateGraph
from shared.graph.state import NodeSpec
from shared.pregel import START, Task, TaskOutcome
from shared.protocol import RunRecord
from shared.runtime import Runtime
from shared.store import Claim, RedisFullError, RunStore
from shared.types import Interrupt
from workers.calls import CallScheduler, Idle, close_scheduler, is_call, no_idle, run_call
from workers.executor import TaskResult, UnknownNodeError, execute_task
from workers.lease import LeaseKeeper

log = logging.getLogger("arqgraph.worker")

PICK_BATCH = 32  # ready jobs taken per round trip: workers that pick together share the work
SWEEP_READ = 1000  # due job ids a sweep of the queue looks at
RETRY_MARGIN = 0.005  # a retry is listed as ready this long after it is due (clocks differ)


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
        lease: float = 5.0,
    ) -> None:
        self.store = RunStore(redis)
        self.queue = queue
        self.graphs = {g.name: g for g in graphs}
        self.threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="arqgraph-node")
        self.node_timeout = node_timeout
        self.crash_limit = crash_limit
        self.max_update_bytes = max_update_bytes
        self.running: dict[str, asyncio.Task[TaskResult]] = {}  # arq job id -> node execution
        self.slots: dict[str, str] = {}  # arq job id -> the concurrency slots key it holds one of
        self.lease = lease
        self.idle: Idle = no_idle  # gives the worker's slot back while a node awaits other jobs
        # graphs with node limits: their tasks are claimed once a limit lets them start
        self.limited = {g.name for g in graphs if any(
            spec.concurrency is not None or spec.rate_interval is not None
            for spec in g.nodes.values())}

    async def run_job(self, ctx: dict[str, Any], **payload: Any) -> str:
        try:
            job = protocol.TaskJob.model_validate(payload)
        except pydantic.ValidationError as exc:
            log.error("job %s rejected: payload is not a task: %s", ctx.get("job_id"), exc)
            return "rejected: bad payload"
        graph = self.graphs.get(job.graph)
        if graph is None:
            return await self._refuse(job, LookupError(
                f"this worker does not serve graph {job.graph!r} (it serves {sorted(self.graphs)})"
            ))
        if job.fingerprint != graph.fingerprint:
            return await self._refuse(job, GraphMismatchError(
                f"task {job.task_id} of run {job.run_id} was planned for graph {job.graph!r} "
                f"with fingerprint {job.fingerprint}, but this worker has {graph.fingerprint}; "
                "refusing to mix versions"
            ))
        claim: Claim | None | Literal[False] = False
        if job.graph in self.limited or is_call(job.task_id):  # claimed later, if at all
            record = await self.store.load_run(job.run_id)
        else:
            record, claim = await self.store.start_task(job.run_id, job.checkpoint_id, job.task_id)
        checkpoint = record.checkpoint if record else None
        if record is None or checkpoint is None or record.status != "running":
            return "skipped: run is not running"
        if record.cancel_requested:
            return "skipped: run is cancelled"
        if record.checkpoint_id != job.checkpoint_id:
            return "skipped: stale step"
        if is_call(job.task_id):  # a @task call of a Functional API entrypoint
            return await run_call(self.store, job, record, self.threads, self.node_timeout)
        task = checkpoint.task(job.task_id)
        if task is None:
            return await self._refuse(job, UnknownNodeError(f"no task {job.task_id} in this step"))
        key = str(ctx.get("job_id", job.task_id))
        spec = graph.nodes.get(task.node)
        if spec is not None:
            await self._wait_for_limits(job, spec, key)
        try:
            return await self._run_task(job, record, graph, task, key, claim)
        finally:
            if key in self.slots:
                del self.slots[key]
                with contextlib.suppress(Exception):  # else the slot's lease runs out
                    await self.store.release_slot(job.graph, task.node, key)

    async def _wait_for_limits(self, job: protocol.TaskJob, spec: NodeSpec, key: str) -> None:
        """Send the job back to the queue (arq's Retry: no worker slot held while it waits) until
        the node's rate limit lets it start and one of its concurrency slots is free."""
        interval = spec.rate_interval
        if interval is not None:
            wait = await self.store.rate_wait(job.graph, spec.name, key, interval)
            if wait > 0:
                raise Retry(defer=wait)
        if spec.concurrency is not None:
            if not await self.store.acquire_slot(job.graph, spec.name, key, spec.concurrency,
                                                 self.lease):
                raise Retry(defer=random.uniform(0.02, 0.1))
            self.slots[key] = protocol.slots_key(job.graph, spec.name)

    async def _run_task(
        self, job: protocol.TaskJob, record: RunRecord, graph: CompiledStateGraph, task: Task,
        key: str, claim: Claim | None | Literal[False],
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

        execution = asyncio.create_task(self._execute(job, record, graph, task, claim))
        self.running[key] = execution
        try:
            result = await execution
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():  # the worker is stopping: hand the task back
                execution.cancel()
                await asyncio.shield(self._hand_back(job, claim))
                raise
            return "cancelled: the run was cancelled"  # the node saw CancelledError
        finally:
            self.running.pop(key, None)
        if result.retry_after is not None:
            await self.store.end_attempt(record.tag, job.checkpoint_id, job.task_id, claim,
                                         failed=True)
            raise Retry(defer=result.retry_after)
        events: list[tuple[Any, Any]] = []
        outcome = result.outcome
        if outcome.interrupts:
            asked = tuple(Interrupt(value, iid) for iid, value in outcome.interrupts)
            events.append(("updates", {"__interrupt__": asked}))
            assert record.checkpoint is not None
            events.append(("values", {**graph.schema.output(record.checkpoint.values),
                                      "__interrupt__": asked}))
        elif outcome.error is None and task.node != START:
            events.append(("updates", {result.shown_as or task.node: result.shown}))
        try:
            posted = await self._post(job, outcome, events, claim)
        except Exception as exc:  # too large, unserializable, or Redis out of memory: fail visibly
            failed = TaskOutcome(task.id, task.node, error=ErrorInfo.of(exc, task.node))
            posted = await self._post(job, failed, (), claim)
        if posted == 1:
            return "done"
        said = {0: "skipped: another attempt won", -1: "fenced: a newer attempt owns it"}[posted]
        log.info("task %s of run %s: %s", task.id, job.run_id, said)
        return said

    async def _execute(
        self, job: protocol.TaskJob, record: RunRecord, graph: CompiledStateGraph, task: Task,
        claim: Claim,
    ) -> TaskResult:
        loop = asyncio.get_running_loop()
        pending: list[asyncio.Future[None]] = []

        def write_custom(chunk: Any) -> None:
            codec.packb(chunk)  # fail in the node, naming the type, if it cannot be sent
            future = asyncio.run_coroutine_threadsafe(
                self.store.emit(job.run_id, "custom", chunk), loop
            )
            pending.append(asyncio.wrap_future(future, loop=loop))

        config = dict(record.config)
        config["metadata"] = {
            **config.get("metadata", {}), "langgraph_node": task.node, "langgraph_step": job.step,
        }
        runtime: Runtime[Any] = Runtime(context=record.context, stream_writer=write_custom)
        assert record.checkpoint is not None
        scheduler = CallScheduler(
            self.store, record, job.checkpoint_id, task.id, self.queue, self.idle
        )
        current_scheduler.set(scheduler)
        try:
            result = await execute_task(
                graph, record.checkpoint, task, config, runtime, self.threads,
                attempt=claim.failures + 1, default_timeout=self.node_timeout,
                resume=claim.resume, interrupt_ids=f"{record.tag}:{job.checkpoint_id}:{task.id}",
            )
        finally:
            await close_scheduler(scheduler)
        await asyncio.gather(*pending)
        return result

    async def _post(
        self, job: protocol.TaskJob, outcome: TaskOutcome, events: Sequence[tuple[Any, Any]],
        claim: Claim,
    ) -> int:
        """Post the node's outcome, waiting out a Redis outage rather than losing the node's
        work (posting again is harmless: the first outcome posted wins)."""
        delay = 0.1
        while True:
            try:
                return await self.store.post_outcome(
                    job.graph, job.run_id, job.checkpoint_id, outcome, events, claim,
                    self.max_update_bytes,
                )
            except RedisFullError as exc:  # keep the node's work until Redis has room again
                log.error("%s; retrying in %.1fs", exc, delay)
            except Exception as exc:
                if not lost_redis(exc):
                    raise
                log.warning("lost Redis posting the outcome of task %s of run %s (%s); "
                            "retrying in %.1fs", job.task_id, job.run_id, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _hand_back(self, job: protocol.TaskJob, claim: Claim) -> None:
        """A stopping worker gives its task back: the start does not count as lost (arq puts
        the job back in the queue, and `GraphWorker.finish_job` lists it as ready again)."""
        try:
            tag = protocol.tag_of(job.run_id)
            await self.store.end_attempt(tag, job.checkpoint_id, job.task_id, claim, failed=False)
        except Exception as exc:  # Redis gone: the lease runs out and the task is re-run anyway
            log.warning("could not hand back task %s of run %s: %s", job.task_id, job.run_id, exc)

    async def _refuse(
        self, job: protocol.TaskJob, exc: Exception, claim: Claim | None = None
    ) -> str:
        log.error("job for run %s task %s refused: %s", job.run_id, job.task_id, exc)
        node = job.task_id.split(":")[-1]
        outcome = TaskOutcome(job.task_id, node, error=ErrorInfo.of(exc, node))
        if await self.store.load_run(job.run_id) is not None:
            await self.store.post_outcome(
                job.graph, job.run_id, job.checkpoint_id, outcome, (), claim
            )
        return f"refused: {exc}"

    def cancel_runs(self, run_ids: set[str]) -> None:
        """Cancel the running nodes of these runs (called on the worker's loop)."""
        for job, execution in list(self.running.items()):
            if protocol.run_of_job(job) in run_ids:
                execution.cancel()


class GraphWorker(Worker):
    """An arq worker that takes its jobs from the queue's ready list (a blocking pop: it wakes
    as soon as a job is enqueued, and takes a batch in one round trip) instead of polling the
    queue, and holds its jobs with short renewed leases (see `LeaseKeeper`). arq still runs
    each job: its job keys, tries, retries, results and queue are arq's own."""

    runner: NodeRunner
    lease: float
    stopping = False
    keeper: LeaseKeeper | None = None
    slot_freed: asyncio.Event | None = None  # set when a job ends: a full worker looks again
    scores: dict[str, int]  # queue score of each running job (when a retry comes due)
    later: set[asyncio.Task[None]]  # retries waiting to be listed as ready when due

    @contextlib.asynccontextmanager
    async def slot_released(self) -> AsyncIterator[None]:
        """While an entrypoint awaits its task calls, its job does not count against
        `--concurrency`: else entrypoints waiting for calls could take every slot and wait
        for ever."""
        self.job_counter -= 1
        self.sem.release()
        if self.slot_freed is not None:
            self.slot_freed.set()
        try:
            yield
        finally:
            await self.sem.acquire()
            self.job_counter += 1

    async def stop(self) -> None:
        """Stop taking jobs and leave the wait for new ones at once."""
        self.stopping = True
        self.allow_pick_jobs = False
        await self.pool.lpush(protocol.ready_key(self.queue_name), b"-")  # not a job: skipped

    def threads_shutdown(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()
        for pending in self.later:
            pending.cancel()
        self.runner.threads.shutdown(wait=False, cancel_futures=True)

    async def serve_resilient(self) -> None:
        """Serve until stopped by a signal, riding out Redis outages with backoff."""
        delay = 0.2
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.async_run()
                return
            except asyncio.CancelledError:
                if self.main_task is not None and self.main_task.cancelled():
                    return  # stopped by SIGTERM/SIGINT
                raise
            except Exception as exc:
                if not lost_redis(exc):
                    raise
                if loop.time() - started > 10:
                    delay = 0.2  # a new outage, after a while of serving: start the backoff over
                log.warning("lost Redis (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def main(self) -> None:
        """Take ready jobs as they come; sweep the queue for due jobs now and then (a retry
        come due, a dead worker's job whose lease ran out, an entry lost with a dead worker)."""
        self.ctx["redis"] = self.pool
        if self.keeper is None:
            self.keeper = LeaseKeeper(self, self.lease)
            self.keeper.start()
        store, queue = self.runner.store, self.queue_name
        await _require_redis_7(self.pool)
        self.slot_freed = asyncio.Event()
        loop = asyncio.get_running_loop()
        sweep_at = 0.0
        while not self.stopping:
            self.slot_freed.clear()
            self._forget_finished()
            await self.heart_beat()
            free = self.max_jobs - self.job_counter
            if not self.allow_pick_jobs or free <= 0:  # look again as soon as a slot frees
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.slot_freed.wait(), self.poll_delay_s)
            elif loop.time() >= sweep_at:
                await self.start_jobs(await store.due_jobs(queue, SWEEP_READ))
                sweep_at = loop.time() + await self._until_next_job()
            else:
                wait = max(sweep_at - loop.time(), 0.001)
                ids = await store.pop_ready(queue, min(free, PICK_BATCH), wait)
                if self.stopping:  # they are another worker's now
                    await store.ready_again(queue, ids)
                else:
                    await self.start_jobs(ids)

    async def start_jobs(self, job_ids: Sequence[str | bytes]) -> None:
        """Start the jobs among `job_ids` that this worker takes (one script for all of them,
        where arq spends a WATCH/MULTI per job), as many as it has free slots."""
        ids = [j.decode() if isinstance(j, bytes) else j for j in job_ids]
        taken = await self.runner.store.take_jobs(
            self.queue_name, ids, self.in_progress_timeout_s, self.max_jobs - self.job_counter
        )
        for job_id, score in taken:
            await self.sem.acquire()
            self.job_counter += 1
            self.scores[job_id] = score
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    def _forget_finished(self) -> None:
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # arq's: an error in run_job itself is not swallowed

    async def run_job(self, job_id: str, score: int) -> None:
        """arq's run_job. If Redis is lost during arq's own bookkeeping of the job (before the
        node runs, or while recording its end), the job stays queued but marked in progress
        until its lease runs out: clear that mark once Redis is back, so the job runs again
        at once (a task whose outcome was posted is then skipped)."""
        try:
            await super().run_job(job_id, score)
        except Exception as exc:
            if not lost_redis(exc):
                raise
            log.warning("job %s: lost Redis (%s); it will run again", job_id, exc)
            delay = 0.1
            while True:
                await asyncio.sleep(delay)
                try:
                    await self.pool.delete(protocol.lease_key(job_id))
                    await self.runner.store.ready_again(self.queue_name, [job_id])
                    return
                except Exception as again:
                    if not lost_redis(again):
                        raise
                    delay = min(delay * 2, 2.0)
        finally:
            self.scores.pop(job_id, None)

    async def finish_job(
        self, job_id: str, finish: bool, result_data: bytes | None,
        result_timeout_s: float | None, keep_result_forever: bool, incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's, then a job that goes back to the queue is listed as ready again: at once
        when handed back, when due when retried later."""
        await super().finish_job(job_id, finish, result_data, result_timeout_s,
                                 keep_result_forever, incr_score, keep_in_progress)
        if finish:
            return
        due_in = 0.0
        if incr_score:
            due_in = (self.scores.get(job_id, timestamp_ms()) + incr_score - timestamp_ms()) / 1000
        if due_in <= 0:
            await self._ready_again(job_id)
        else:
            task = self.loop.create_task(self._ready_again(job_id, due_in + RETRY_MARGIN))
            self.later.add(task)
            task.add_done_callback(self.later.discard)

    async def _ready_again(self, job_id: str, after: float = 0) -> None:
        await asyncio.sleep(after)
        try:
            await self.runner.store.ready_again(self.queue_name, [job_id])
        except Exception as exc:  # the sweep finds it instead
            log.warning("could not list job %s as ready again: %s", job_id, exc)

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        if self.slot_freed is not None:
            self.slot_freed.set()

    async def _until_next_job(self) -> float:
        """How long until the next sweep: until the earliest deferred job is due (a retry, a
        call waiting for its rate limit or a concurrency slot), at most the poll delay."""
        due = await self.runner.store.next_due(self.queue_name)
        if due is None:
            return self.poll_delay_s
        return max(0.002, min(self.poll_delay_s, (due - timestamp_ms()) / 1000))

    async def close(self) -> None:
        await super().close()
        self.threads_shutdown()


async def _require_redis_7(redis: ArqRedis) -> None:
    """Workers take jobs with BLMPOP (Redis 7.0): say so up front, not on the first pop."""
    try:
        version = (await redis.info("server")).get("redis_version", "")
    except ResponseError:  # no INFO (the in-memory Redis): it has BLMPOP
        return
    major = str(version).split(".")[0]
    if major.isdigit() and int(major) < 7:
        raise RuntimeError(f"arqgraph workers need Redis 7.0 or newer (for BLMPOP); the server "
                           f"at this URL is Redis {version}")


UNLIMITED = 10**9  # arq's own try limit and job timeout are replaced by arqgraph's own bounds


def build_worker(
    redis: ArqRedis,
    graphs: Sequence[CompiledStateGraph],
    *,
    concurrency: int = 10,
    queue: str = protocol.DEFAULT_QUEUE,
    poll_delay: float = 0.5,
    job_timeout: float | None = 300,
    shutdown_grace: float = 0,
    handle_signals: bool = True,
    lease: float = 5.0,
    crash_limit: int = 5,
    max_update_bytes: int = protocol.MAX_UPDATE_BYTES,
) -> GraphWorker:
    """An arq worker executing `graphs`' nodes, `concurrency` at a time, msgpack on the wire.

    `job_timeout` is the timeout of nodes that set none (NodeTimeoutError, retried under the
    node's policy); `lease` how long a dead worker's task waits before another worker re-runs
    it; `crash_limit` how many such deaths a task survives before its run fails.
    """
    runner = NodeRunner(
        redis, graphs, threads=concurrency, node_timeout=job_timeout or None,
        crash_limit=crash_limit, max_update_bytes=max_update_bytes, queue=queue, lease=lease,
    )
    worker = GraphWorker(
        functions=[func(runner.run_job, name=protocol.TASK_FUNCTION, max_tries=UNLIMITED)],
        redis_pool=redis,
        queue_name=queue,
        max_jobs=concurrency,
        poll_delay=poll_delay,
        job_timeout=UNLIMITED,
        keep_result=60,
        log_results=False,
        handle_signals=handle_signals,
        job_completion_wait=int(shutdown_grace),
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
    )
    worker.in_progress_timeout_s = lease
    worker.scores = {}
    worker.later = set()
    worker.runner = runner
    runner.idle = worker.slot_released
    worker.lease = lease
    return worker
