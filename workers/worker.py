"""The arq worker that executes graph nodes: how it takes its jobs and holds them.

Each arq job names one task of one run (`protocol.TaskJob`) and is run by `NodeRunner`
(`arqgraph.workers.runner`). The worker around it takes jobs from the queue's ready list as soon as they
are enqueued (a blocking pop, a batch per round trip) instead of polling the queue, holds them
with short renewed leases (`arqgraph.workers.lease`), and hands them back when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from signal import Signals
from typing import TYPE_CHECKING, cast

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import SerializationError, deserialize_job_raw
from arq.utils import timestamp_ms
from arq.worker import Worker, func
from redis.exceptions import ResponseError

from arqgraph import observe, protocol
from arqgraph.protocol import Heartbeat
from arqgraph.storage.connection import Backoff, job_deserializer, job_serializer, lost_redis
from arqgraph.storage.presence import Presence, new_heartbeat, process_id
from arqgraph.storage.queue import RESULT_KEPT_S, TakenJob
from arqgraph.workers.lease import LeaseKeeper
from arqgraph.workers.opened import Opened, OpenedJob, opened, run_opened
from arqgraph.workers.refusals import refuse_poison
from arqgraph.workers.runner import NodeRunner

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph

log = logging.getLogger("arqgraph.worker")

PICK_BATCH = 32  # ready jobs taken per round trip: workers that pick together share the work
SWEEP_READ = 1000  # due jobs a sweep of the queue looks at (it takes those no worker holds)
IDLE_SWEEP = protocol.IDLE_HEARTBEAT_INTERVAL  # seconds between sweeps of an empty queue (see
# `_until`): with the idle heartbeat, in one wake
SWEEP_SLACK = 0.05  # an idle sweep due this soon is made at once, with the heartbeat that woke
RETRY_MARGIN = 0.005  # a retry is listed as ready this long after it is due (clocks differ)
_OPENING: ContextVar[TakenJob | None] = ContextVar("arqgraph_opening", default=None)


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
    handed: set[str]  # running jobs whose slot went to the job their post took (`hand_over`)
    later: set[asyncio.Task[None]]  # retries waiting to be listed as ready when due
    presence: Presence
    beat: Heartbeat  # what `arqgraph workers` shows of it, and what readiness waits for
    beat_at = 0.0
    since: dict[str, float]  # when each running job started (Unix time), for its heartbeat
    queue_idle = False  # the last sweep found the queue empty, and this worker took no job since
    popping: asyncio.Future[list[str]] | None = None  # the wait for ready jobs (`stop` ends it)

    async def heart_beat(self) -> None:
        """arq's health key, and arqgraph's heartbeat when due (`beat_due`)."""
        await super().heart_beat()
        now = time.monotonic()
        if now >= self.beat_due():
            self.beat_at = now
            self.beat.every = self.beat_interval(protocol.IDLE_HEARTBEAT_INTERVAL)
            self.beat.running = self.job_counter
            self.beat.jobs = {j: self.since[j] for j in self.tasks if j in self.since}
            await self.presence.beat(self.beat)

    def beat_due(self) -> float:
        """When the next heartbeat is due (monotonic time): when the last one said, and at most
        HEARTBEAT_INTERVAL after it while the worker runs jobs (the beat lists them)."""
        return self.beat_at + self.beat_interval(self.beat.every)

    def beat_interval(self, idle: float) -> float:
        """HEARTBEAT_INTERVAL while the worker runs jobs (its beat lists them), else `idle`."""
        return protocol.HEARTBEAT_INTERVAL if self.tasks else idle

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
        self.runner.hand_over = None
        if self.popping is not None:  # (ids it popped meanwhile stay queued: a sweep finds them)
            self.popping.cancel()

    def handle_sig_wait_for_completion(self, signum: Signals) -> None:
        log.info("worker stopping on %s: it takes no new jobs; running nodes have %s s to "
                 "finish, then go back to the queue", Signals(signum).name,
                 self._job_completion_wait)
        self.runner.hand_over = None  # (else a chain's jobs would go on, each taking the next)
        super().handle_sig_wait_for_completion(signum)

    def handle_sig(self, signum: Signals) -> None:
        if self._handle_signals:  # (else: the embedded worker closing)
            log.info("worker stopping on %s: running nodes go back to the queue",
                     Signals(signum).name)
        self.runner.hand_over = None
        super().handle_sig(signum)

    def threads_shutdown(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()
        for pending in self.later:
            pending.cancel()
        self.runner.threads.shutdown(wait=False, cancel_futures=True)

    async def serve_resilient(self) -> None:
        """Serve until stopped by a signal, riding out Redis outages with backoff."""
        backoff = Backoff(0.2, 5.0)
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
                if not self.allow_pick_jobs:  # stopping (SIGTERM) with Redis away: the jobs
                    return  # this worker held go to others once their leases run out
                if loop.time() - started > 10:
                    backoff.reset()  # a new outage, after a while of serving
                log.warning("lost Redis (%s); reconnecting in %.1fs", exc, backoff.delay)
                await backoff.wait(lambda: not self.allow_pick_jobs)  # a SIGTERM ends the wait

    async def main(self) -> None:
        """Take ready jobs as they come; sweep the queue for due jobs now and then (a retry
        come due, a dead worker's job whose lease ran out, an entry lost with a dead worker).

        Idle, a worker makes four Redis commands every IDLE_SWEEP: the pop that timed out, its
        heartbeat and the sweep, a script that reads one entry. The pop wakes at once on a job.
        A worker that takes a job from an idle queue wakes one idle peer with NOT_A_JOB: the
        peer sweeps, sees the job held, and sweeps again as its lease runs out, so that a
        job of a worker that dies is run again as soon as before."""
        self.ctx["redis"] = self.pool
        if self.keeper is None:
            self.keeper = LeaseKeeper(self, self.lease)
            self.keeper.start()
        jobs = self.runner.jobs
        await _require_redis_7(self.pool)
        self.slot_freed = asyncio.Event()
        loop = asyncio.get_running_loop()
        sweep_at = 0.0
        full = False  # the last pop took as many as it asked for
        while not self.stopping:
            self.slot_freed.clear()
            await self.heart_beat()
            observe.current().heartbeat()
            free = self.max_jobs - self.job_counter
            if not self.allow_pick_jobs or free <= 0:  # look again as soon as a slot frees
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.slot_freed.wait(), self.poll_delay_s)
            elif loop.time() >= sweep_at - (SWEEP_SLACK if self.queue_idle else 0):
                swept = await jobs.sweep(SWEEP_READ, free, PICK_BATCH)
                self.queue_idle = swept.next_due is None and not swept.job_ids
                await self.start_jobs(swept.job_ids, swept.most)
                sweep_at = loop.time() + self._until(swept.next_due, bool(swept.job_ids))
            else:  # (until the sweep or the heartbeat is due, whichever comes first)
                most = min(free, PICK_BATCH)
                if full:  # (more are likely ready: taken before the nodes just started run)
                    ids = await jobs.pop_ready(most, None)
                else:
                    wait = min(sweep_at, self.beat_due() - time.monotonic() + loop.time())
                    self.popping = asyncio.ensure_future(
                        jobs.pop_ready(most, max(wait - loop.time(), 0.001)))
                    try:
                        ids = await self.popping
                    except asyncio.CancelledError:
                        me = asyncio.current_task()
                        if self.stopping and me is not None and not me.cancelling():
                            break  # (`stop` ended the wait, not a cancel of this task)
                        raise
                    finally:
                        self.popping = None
                full = len(ids) >= most
                if protocol.NOT_A_JOB in ids:  # a peer took a job from an idle queue
                    ids = [i for i in ids if i != protocol.NOT_A_JOB]
                    sweep_at = 0.0
                if self.stopping:  # they are another worker's now
                    await jobs.ready_again(ids)
                elif ids:
                    await self.start_jobs(ids)
                    if self.queue_idle and self.tasks:  # a peer sweeps as its lease could run out
                        self.queue_idle = False
                        await jobs.ready_again([protocol.NOT_A_JOB])

    async def start_jobs(self, job_ids: Sequence[str | bytes], most: int | None = None) -> None:
        """Start the jobs among `job_ids` that this worker takes (one script for all of them,
        where arq spends a WATCH/MULTI per job, and another MULTI per job as it starts it; the
        script starts their tasks too, see NodeRunner.take), as many as it has free slots
        (`most` at most)."""
        ids = [j.decode() if isinstance(j, bytes) else j for j in job_ids]
        free = self.max_jobs - self.job_counter
        taken = await self.runner.take(
            ids, self.in_progress_timeout_s, free if most is None else min(most, free)
        )
        for job in taken:
            await self.sem.acquire()
            self._start(job)

    def hand_over(self, posted: str, job: TakenJob) -> None:
        """Run `job`, which the post of job `posted`'s outcome took for this worker (the first
        of the next step of the run it moved on, see NodeRunner), in `posted`'s slot: that job
        is done but for arq's bookkeeping. Its task was started with the take. A worker that
        began to stop during that post gives the job back instead."""
        if self.stopping or not self.allow_pick_jobs:
            self.runner.give_back_soon(job)
            return
        self.handed.add(posted)
        self._start(job)

    def _start(self, job: TakenJob) -> None:
        self.job_counter += 1
        self.scores[job.job_id] = job.score
        self.since[job.job_id] = time.time()
        task = self.loop.create_task(self._run_taken(job))
        task.add_done_callback(functools.partial(self._job_ended, job.job_id))
        self.tasks[job.job_id] = task
        if self.keeper is not None:  # (after the job is listed: see LeaseKeeper.idle)
            self.keeper.busy()

    async def _run_taken(self, job: TakenJob) -> None:
        found = opened(self, job)
        if found is not None:  # (the common case: see `arqgraph.workers.opened`)
            await self.run_job(job.job_id, job.score, (job, found))
            return
        if job.job:  # poison arq fails as a job (not retried): the task and its run fail too
            why = ""
            try:
                function = deserialize_job_raw(job.job, deserializer=self.job_deserializer)[0]
                if function not in self.functions:
                    why = f"its job calls {function!r}, no function of this worker"
            except SerializationError as exc:
                why = f"its job is not an arq job: {exc}"
            if why:
                try:
                    await refuse_poison(self.runner.store, job.job_id,
                                        job_key_prefix + job.job_id, why, job.job)
                except Exception as exc:  # (Redis away: arq still ends the job below)
                    log.warning("job %s: could not fail its run (%s): %r", job.job_id, why, exc)
        _OPENING.set(job)  # (this task's own context: see `pool`)
        await self.run_job(job.job_id, job.score)

    @property
    def pool(self) -> ArqRedis:
        """The worker's Redis; but the first thing arq's run_job asks of it, a MULTI that
        reads the job and counts its try, the take script has done already: for a job it took,
        that MULTI is answered from what the script returned, without a round trip."""
        opening = _OPENING.get()
        if opening is not None:
            _OPENING.set(None)
            return cast(ArqRedis, OpenedJob(opening))
        return cast(ArqRedis, self._pool)

    def _job_ended(self, job_id: str, task: asyncio.Task[None]) -> None:
        """A job's task is over: forget it and free its slot at once (arq does so on its next
        poll, which a worker whose Redis is away never reaches: a SIGTERM would then wait the
        whole --shutdown-grace for jobs that are done)."""
        if self.tasks.get(job_id) is task:
            del self.tasks[job_id]
            self.since.pop(job_id, None)
        self.runner.ended.discard(job_id)  # (when arq's run_job did not get to finish it)
        self.runner.ending.pop(job_id, None)
        self.runner.started.pop(job_id, None)  # (when arq did not run the job)
        if job_id in self.handed:  # its slot is the job's it handed over to
            self.handed.discard(job_id)
            self.job_counter -= 1
        else:
            self._release_sem_dec_counter_on_complete()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("job %s: arq's run_job failed: %r", job_id, exc, exc_info=exc)

    async def run_job(self, job_id: str, score: int,
                      taken: tuple[TakenJob, Opened] | None = None) -> None:
        """arq's run_job (`run_opened`'s for a job its take opened). If Redis is lost during
        arq's own bookkeeping of the job (before the node runs, or while recording its end),
        the job stays queued but marked in progress until its lease runs out: clear that mark
        once Redis is back, so the job runs again at once (a task whose outcome was posted is
        then skipped)."""
        try:
            if taken is not None:
                await run_opened(self, *taken)
            else:
                await super().run_job(job_id, score)
        except Exception as exc:
            if not lost_redis(exc):
                raise
            log.warning("job %s: lost Redis (%s); it will run again", job_id, exc)
            backoff = Backoff()
            while True:
                await backoff.wait()
                try:
                    await self.runner.jobs.release(job_id)
                    return
                except Exception as again:
                    if not lost_redis(again):
                        raise
        finally:
            self.scores.pop(job_id, None)

    async def finish_job(
        self, job_id: str, finish: bool, result_data: bytes | None,
        result_timeout_s: float | None, keep_result_forever: bool, incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's (for a finished job, the same in one script, batched with the ends of other
        jobs); then a job that goes back to the queue is listed as ready again: at once when
        handed back, when due when retried later."""
        if finish and job_id in self.runner.ended:  # the post of its outcome ended it
            self.runner.ended.discard(job_id)
            return
        if finish and result_data and result_timeout_s and not keep_result_forever:
            end, graph = self.runner.ending.pop(job_id, ("done", ""))
            if await self.runner.jobs.finish(job_id, result_data, int(result_timeout_s * 1000),
                                             end) and end == "redrive":
                await self.runner.redrive(job_id, graph)
            return
        if finish:
            await super().finish_job(job_id, finish, result_data, result_timeout_s,
                                     keep_result_forever, incr_score, keep_in_progress)
            return
        # Back to the queue, due as arq would have it (its score as queued, plus the retry's
        # delay): the take moved its score to its lease's end (see `take` in the scripts).
        due = self.scores.get(job_id, timestamp_ms()) + (incr_score or 0)
        due_in = (due - timestamp_ms()) / 1000
        await self.runner.jobs.requeue(job_id, due, listed=due_in <= 0)
        if due_in > 0:
            task = self.loop.create_task(self._ready_again(job_id, due_in + RETRY_MARGIN))
            self.later.add(task)
            task.add_done_callback(self.later.discard)

    async def _ready_again(self, job_id: str, after: float = 0) -> None:
        await asyncio.sleep(after)
        try:
            await self.runner.jobs.ready_again([job_id])
        except Exception as exc:  # the sweep finds it instead
            log.warning("could not list job %s as ready again: %s", job_id, exc)

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        if self.slot_freed is not None:
            self.slot_freed.set()

    def _until(self, due: int | None, found: bool) -> float:
        """How long until the next sweep: until the earliest deferred job is due (a retry, a
        call waiting for its rate limit or a concurrency slot), at most the poll delay; an
        empty queue waits IDLE_SWEEP (the jobs enqueued meanwhile wake the pop at once: the
        sweep only finds an entry lost with a dead worker)."""
        if due is None:
            return self.poll_delay_s if found else max(self.poll_delay_s, IDLE_SWEEP)
        return max(0.002, min(self.poll_delay_s, (due - timestamp_ms()) / 1000))

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # (with Redis away the beat goes stale instead)
            await self.presence.leave(self.beat.id)
        try:
            await super().close()
        except Exception as exc:  # Redis away: arq could not delete its health key (it expires)
            if not lost_redis(exc):
                raise
            log.warning("stopped without Redis (%s)", exc)
            with contextlib.suppress(Exception):
                await self.pool.aclose(close_connection_pool=True)
        finally:
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


UNLIMITED = 10**9  # arq's own try limit is replaced by arqgraph's own bounds


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
    shared_cache: bool = True,
) -> GraphWorker:
    """An arq worker executing `graphs`' nodes, `concurrency` at a time, msgpack on the wire.

    `job_timeout` is the timeout of nodes that set none (NodeTimeoutError, retried under the
    node's policy); `lease` how long a dead worker's task waits before another worker re-runs
    it; `crash_limit` how many such deaths a task survives before its run fails.
    """
    runner = NodeRunner(
        redis, graphs, threads=concurrency, node_timeout=job_timeout or None,
        crash_limit=crash_limit, max_update_bytes=max_update_bytes, queue=queue, lease=lease,
        shared_cache=shared_cache,
    )
    worker = GraphWorker(
        functions=[func(runner.run_job, name=protocol.TASK_FUNCTION, max_tries=UNLIMITED)],
        redis_pool=redis,
        queue_name=queue,
        max_jobs=concurrency,
        poll_delay=poll_delay,
        keep_result=RESULT_KEPT_S,
        log_results=False,
        handle_signals=handle_signals,
        job_completion_wait=int(shutdown_grace),
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
    )
    worker.in_progress_timeout_s = lease
    # the bound is the node's timeout; with none of arq's, its run_job awaits each job without
    # a timer and a waiter of their own (arq handles None; its typing does not say so)
    worker.job_timeout_s = None  # type: ignore[assignment]
    worker.scores = {}
    worker.handed = set()
    worker.later = set()
    worker.runner = runner
    runner.idle = worker.slot_released
    runner.hand_over = worker.hand_over
    worker.lease = lease
    worker.since = {}
    worker.presence = Presence(redis, "worker")
    worker.beat = new_heartbeat(process_id(worker), [queue], list(runner.graphs), concurrency)
    runner.worker_id = worker.beat.id
    return worker
