"""The orchestrator: walks runs from superstep to superstep as their tasks finish.

It is level-triggered: on any notice about a run (submitted, a task done, cancel) it reads the
run and does whatever is due — enqueue the current step's missing tasks, or, once every task has
an outcome, fold the writes and commit the next checkpoint with a compare-and-set on the run's
version. Doing the due thing twice is harmless (job ids are deterministic, the commit is a CAS),
so several orchestrators can serve one Redis, and a periodic sweep of unfinished runs repairs
any notice that was lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

from arq.connections import ArqRedis

from shared import protocol
from shared.errors import (
    EmptyInputError,
    ErrorInfo,
    GraphMismatchError,
    GraphRecursionError,
    InvalidInputError,
)
from shared.graph.state import CompiledStateGraph
from shared.pregel import (
    START,
    Checkpoint,
    exceeds_recursion_limit,
    first_checkpoint,
    next_checkpoint,
    start_outcome,
)
from shared.protocol import GraphInfo, RunRecord
from shared.store import RunStore, lost_redis

log = logging.getLogger("arqgraph.orchestrator")

DEFAULT_RECURSION_LIMIT = 10007
WEEK = 7 * 24 * 3600


class Orchestrator:
    """Serves the runs of the given graphs from one Redis."""

    def __init__(
        self,
        redis: ArqRedis,
        graphs: Sequence[CompiledStateGraph],
        *,
        queue: str = protocol.DEFAULT_QUEUE,
        sweep_interval: float = 2.0,
        retention: int = WEEK,
        max_parallel_runs: int = 64,
    ) -> None:
        self.store = RunStore(redis)
        self.graphs = {g.name: g for g in graphs}
        self.queue = queue
        self.sweep_interval = sweep_interval
        self.retention = retention
        self.name = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._slots = asyncio.Semaphore(max_parallel_runs)

    async def register(self) -> None:
        for graph in self.graphs.values():
            info = GraphInfo(name=graph.name, fingerprint=graph.fingerprint, queue=self.queue)
            await self.store.register_graph(info)

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set: react to notices, sweep unfinished runs now and then."""
        stop = stop or asyncio.Event()
        await self.register()
        log.info("orchestrator %s serving graphs %s", self.name, ", ".join(self.graphs))
        sweeper = asyncio.create_task(self._sweep_forever(stop))
        try:
            while not stop.is_set():
                note = await self.store.next_note(list(self.graphs), timeout=0.5)
                if note is not None and note.kind != "wake":
                    self.poke(note.run_id)
        finally:
            sweeper.cancel()
            for task in list(self._busy.values()):
                task.cancel()
            await asyncio.gather(sweeper, *self._busy.values(), return_exceptions=True)

    async def serve_resilient(self, stop: asyncio.Event) -> None:
        """`serve`, riding out Redis outages: reconnect with backoff, and say so."""
        delay = 0.2
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            try:
                await self.serve(stop)
            except Exception as exc:
                if not lost_redis(exc):
                    raise
                if loop.time() - started > 10:
                    delay = 0.2  # a new outage, after a while of serving: start the backoff over
                log.warning("lost Redis (%s); reconnecting in %.1fs", exc, delay)
                try:  # a stop during the outage ends the wait
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 5.0)

    async def _sweep_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                for name in self.graphs:
                    for run_id in await self.store.active_runs(name):
                        self.poke(run_id)
            except Exception as exc:  # the sweep must outlive a Redis outage: it is the net
                if not lost_redis(exc):
                    raise
                log.warning("sweep: lost Redis (%s); sweeping again later", exc)
            try:
                await asyncio.wait_for(stop.wait(), self.sweep_interval)
            except TimeoutError:
                pass

    def poke(self, run_id: str) -> None:
        """Advance `run_id` soon; if it is being advanced right now, once more afterwards."""
        if run_id in self._busy:
            self._dirty.add(run_id)
            return
        self._busy[run_id] = asyncio.create_task(self._advance_while_dirty(run_id))

    async def _advance_while_dirty(self, run_id: str) -> None:
        try:
            async with self._slots:
                while True:
                    self._dirty.discard(run_id)
                    try:
                        await self.advance(run_id)
                    except Exception:
                        log.exception("advancing run %s failed; the sweep will retry", run_id)
                        return
                    if run_id not in self._dirty:
                        return
        finally:
            self._busy.pop(run_id, None)

    async def advance(self, run_id: str) -> None:
        """Do whatever is due for the run; safe to call any number of times, from anywhere."""
        while True:
            record = await self.store.load_run(run_id)
            if record is None or record.status in protocol.FINAL_STATUSES:
                return
            graph = self.graphs.get(record.graph)
            if graph is None:
                return
            if record.fingerprint and record.fingerprint != graph.fingerprint:
                await self._fail(record, GraphMismatchError(
                    f"run {run_id} was started with graph {record.graph!r} of fingerprint "
                    f"{record.fingerprint}, but this orchestrator has {graph.fingerprint}; "
                    "refusing to mix versions"))
                return
            if record.cancel_requested:
                if await self._finish(record, "cancelled", {"status": "cancelled"}):
                    return
                continue
            if record.status == "pending":
                await self._start(graph, record)
                continue
            if not await self._step(graph, record):
                return

    async def _start(self, graph: CompiledStateGraph, record: RunRecord) -> None:
        if record.input is None:
            await self._fail(record, EmptyInputError("Received no input for __start__"))
            return
        try:
            writes = graph.input_schema.input_writes(record.input)
        except InvalidInputError as exc:
            await self._fail(record, exc)
            return
        checkpoint = first_checkpoint(graph.schema, writes)
        await self.store.commit(
            record, status="running", checkpoint=checkpoint, fingerprint=graph.fingerprint
        )

    async def _step(self, graph: CompiledStateGraph, record: RunRecord) -> bool:
        """One move of a running run. True when the caller should look at the run again."""
        checkpoint = record.checkpoint
        assert checkpoint is not None
        outcomes = await self.store.outcomes(record.run_id, [t.id for t in checkpoint.tasks])
        for task in checkpoint.tasks:
            if task.node == START and START not in graph.branches:
                outcomes[task.id] = start_outcome(task)
        missing = [t for t in checkpoint.tasks if t.id not in outcomes]
        if missing:
            await self.store.enqueue(record, checkpoint.step, missing, graph.fingerprint, self.queue)
            return False
        failures = [e for t in checkpoint.tasks if (e := outcomes[t.id].error) is not None]
        if failures:
            return not await self._fail(record, failures[0])
        try:
            nxt = next_checkpoint(graph.spec, checkpoint, outcomes)
        except Exception as exc:  # InvalidUpdateError, or a reducer that raised
            return not await self._fail(record, exc)
        events: list[tuple[Any, Any]] = []
        if nxt.step_wrote:
            events.append(("values", graph.schema.output(nxt.values)))
        limit = int(record.config.get("recursion_limit", DEFAULT_RECURSION_LIMIT))
        if exceeds_recursion_limit(nxt, limit):
            return not await self._fail(record, GraphRecursionError(
                f"Recursion limit of {limit} reached without hitting a stop condition. You can "
                "increase the limit by setting the `recursion_limit` config key."), events)
        if nxt.tasks:
            await self.store.commit(record, checkpoint=nxt, events=events)
            return True  # look again: to enqueue the new step, or because another commit won
        end = {"status": "done", "output": self._output(graph, nxt)}
        return not await self._finish(record, "done", end, checkpoint=nxt, events=events)

    @staticmethod
    def _output(graph: CompiledStateGraph, checkpoint: Checkpoint) -> Any:
        return graph.output_schema.output(checkpoint.values) if checkpoint.wrote else None

    async def _fail(
        self, record: RunRecord, exc: BaseException | ErrorInfo,
        events: Sequence[tuple[Any, Any]] = (),
    ) -> bool:
        error = exc if isinstance(exc, ErrorInfo) else ErrorInfo.of(exc)
        log.info("run %s failed: %s: %s", record.run_id, error.type, error.message)
        end = {"status": "failed", "error": protocol.encode_error(error)}
        return await self._finish(record, "failed", end, error=error, events=events)

    async def _finish(
        self,
        record: RunRecord,
        status: str,
        end: dict[str, Any],
        *,
        checkpoint: Checkpoint | None = None,
        error: ErrorInfo | None = None,
        events: Sequence[tuple[Any, Any]] = (),
    ) -> bool:
        done = await self.store.commit(
            record,
            status=status,
            checkpoint=checkpoint,
            error=error,
            events=[*events, ("end", end)],
        )
        if done:
            await self.store.expire_run(record.run_id, self.retention)
        return done
