"""The arq worker that executes graph nodes.

Each arq job names one task of one run (`protocol.TaskJob`). The worker reads the run's
checkpoint, runs the node (and its conditional edges), and posts the outcome; the orchestrator
does the rest. A job that is garbage, stale, a duplicate, or for a graph this worker did not
load is logged and dropped, and the worker keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pydantic
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.worker import Worker, func

from shared import codec, protocol
from shared.errors import ErrorInfo, GraphMismatchError
from shared.graph.state import CompiledStateGraph
from shared.pregel import START, TaskOutcome
from shared.runtime import Runtime
from shared.store import RunStore, job_deserializer, job_serializer, lost_redis
from workers.executor import UnknownNodeError, execute_task

log = logging.getLogger("arqgraph.worker")


class NodeRunner:
    """Executes the tasks of the graphs this worker loaded."""

    def __init__(self, redis: ArqRedis, graphs: Sequence[CompiledStateGraph], threads: int) -> None:
        self.store = RunStore(redis)
        self.graphs = {g.name: g for g in graphs}
        self.threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="arqgraph-node")

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
        record = await self.store.load_run(job.run_id)
        checkpoint = record.checkpoint if record else None
        if record is None or checkpoint is None or record.status != "running":
            return "skipped: run is not running"
        if checkpoint.step != job.step:
            return "skipped: stale step"
        task = checkpoint.task(job.task_id)
        if task is None:
            return await self._refuse(job, UnknownNodeError(f"no task {job.task_id} in this step"))
        if await self.store.has_outcome(job.run_id, job.task_id):
            return "skipped: already done"

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
        outcome, shown = await execute_task(graph, checkpoint, task, config, runtime, self.threads)
        await asyncio.gather(*pending)
        events: list[tuple[Any, Any]] = []
        if outcome.error is None and task.node != START:
            events.append(("updates", {task.node: shown}))
        try:
            first = await self._post_outcome(job, outcome, events)
        except Exception as exc:  # an update that cannot be serialized fails the node, visibly
            failed = TaskOutcome(task.id, task.node, error=ErrorInfo.of(exc, task.node))
            first = await self._post_outcome(job, failed, ())
        return "done" if first else "skipped: another attempt won"

    async def _post_outcome(
        self, job: protocol.TaskJob, outcome: TaskOutcome, events: Sequence[tuple[Any, Any]]
    ) -> bool:
        """Post the node's outcome, waiting out a Redis outage rather than losing the node's
        work (posting again is harmless: the first outcome posted wins)."""
        delay = 0.1
        while True:
            try:
                return await self.store.post_outcome(job.graph, job.run_id, outcome, events)
            except Exception as exc:
                if not lost_redis(exc):
                    raise
                log.warning("lost Redis posting the outcome of task %s of run %s (%s); "
                            "retrying in %.1fs", job.task_id, job.run_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _refuse(self, job: protocol.TaskJob, exc: Exception) -> str:
        log.error("job for run %s task %s refused: %s", job.run_id, job.task_id, exc)
        node = job.task_id.split(":")[-1]
        outcome = TaskOutcome(job.task_id, node, error=ErrorInfo.of(exc, node))
        if await self.store.load_run(job.run_id) is not None:
            await self.store.post_outcome(job.graph, job.run_id, outcome, ())
        return f"refused: {exc}"


class GraphWorker(Worker):
    """An arq worker that wakes as soon as a job is enqueued instead of sleeping out its poll."""

    runner: NodeRunner
    stopping = False

    async def stop(self) -> None:
        """Stop taking jobs and leave the wait for new ones at once."""
        self.stopping = True
        self.allow_pick_jobs = False
        await self.pool.lpush(protocol.wake_key(self.queue_name), b"1")

    def threads_shutdown(self) -> None:
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

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        try:
            await super().start_jobs(job_ids)
        except Exception as exc:
            if lost_redis(exc):
                # arq took a slot for the job it was picking up and does not give it back
                self.job_counter -= 1
                self.sem.release()
            raise

    async def run_job(self, job_id: str, score: int) -> None:
        """arq's run_job. If Redis is lost during arq's own bookkeeping of the job (before the
        node runs, or while recording its end), the job stays queued but marked in progress
        until --job-timeout + 10 s: clear that mark once Redis is back, so the job runs again
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
                    await self.pool.delete(in_progress_key_prefix + job_id)
                    return
                except Exception as again:
                    if not lost_redis(again):
                        raise
                    delay = min(delay * 2, 2.0)

    async def main(self) -> None:
        self.ctx["redis"] = self.pool
        wake = protocol.wake_key(self.queue_name)
        while not self.stopping:
            await self._poll_iteration()
            if self.allow_pick_jobs and self.job_counter < self.max_jobs:
                await self.pool.blpop([wake], timeout=self.poll_delay_s)  # type: ignore[arg-type]
            else:
                await asyncio.sleep(self.poll_delay_s)


def build_worker(
    redis: ArqRedis,
    graphs: Sequence[CompiledStateGraph],
    *,
    concurrency: int = 10,
    queue: str = protocol.DEFAULT_QUEUE,
    poll_delay: float = 0.5,
    job_timeout: float = 300,
    shutdown_grace: float = 0,
    handle_signals: bool = True,
) -> GraphWorker:
    """An arq worker executing `graphs`' nodes, `concurrency` at a time, msgpack on the wire."""
    runner = NodeRunner(redis, graphs, threads=concurrency)
    worker = GraphWorker(
        functions=[func(runner.run_job, name=protocol.TASK_FUNCTION, max_tries=5)],
        redis_pool=redis,
        queue_name=queue,
        max_jobs=concurrency,
        poll_delay=poll_delay,
        job_timeout=job_timeout,
        keep_result=60,
        handle_signals=handle_signals,
        job_completion_wait=int(shutdown_grace),
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
    )
    worker.runner = runner
    return worker
