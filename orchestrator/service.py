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

from orchestrator.starts import first_position, new_checkpoint
from shared import protocol
from shared.connection import Backoff, lost_redis
from shared.errors import (
    EmptyInputError,
    ErrorInfo,
    GraphMismatchError,
    GraphRecursionError,
    InvalidInputError,
    InvalidUpdateError,
    ResumeError,
)
from shared.graph.compiled import CompiledStateGraph
from shared.pregel import (
    START,
    Checkpoint,
    TaskOutcome,
    exceeds_recursion_limit,
    given_outcome,
    next_checkpoint,
    ordered,
    pending_view,
)
from shared.protocol import GraphInfo, RunRecord, SavedCheckpoint
from shared.queue import JobQueue, ScriptCall
from shared.store import RunStore
from shared.types import Interrupt

log = logging.getLogger("arqgraph.orchestrator")

DEFAULT_RECURSION_LIMIT = 10007
SWEEP_BACKOFF = 16  # a run the sweep keeps finding waiting is swept this many intervals apart
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
        self.jobs = JobQueue(redis, queue)
        self.graphs = {g.name: g for g in graphs}
        self.queue = queue
        self.sweep_interval = sweep_interval
        self.retention = retention
        self.name = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        # run id -> when this orchestrator last advanced it, and how long the sweep waits then
        self._moved: dict[str, tuple[float, float]] = {}
        self._slots = asyncio.Semaphore(max_parallel_runs)

    async def register(self) -> None:
        for graph in self.graphs.values():
            info = GraphInfo(name=graph.name, fingerprint=graph.fingerprint, queue=self.queue,
                             entrypoint=graph.returns_value)
            await self.store.register_graph(info)

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set: react to notices, sweep unfinished runs now and then."""
        stop = stop or asyncio.Event()
        await self.register()
        log.info("orchestrator %s serving graphs %s", self.name, ", ".join(self.graphs))
        sweeper = asyncio.create_task(self._sweep_forever(stop))
        try:
            while not stop.is_set():
                for note in await self.store.events.next_notes(list(self.graphs), timeout=0.5):
                    if note.kind != "wake":
                        self.poke(note.run_id)
        finally:
            sweeper.cancel()
            for task in list(self._busy.values()):
                task.cancel()
            await asyncio.gather(sweeper, *self._busy.values(), return_exceptions=True)

    async def serve_resilient(self, stop: asyncio.Event) -> None:
        """`serve`, riding out Redis outages: reconnect with backoff, and say so."""
        backoff = Backoff(0.2, 5.0)
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            try:
                await self.serve(stop)
            except Exception as exc:
                if not lost_redis(exc):
                    raise
                if loop.time() - started > 10:
                    backoff.reset()  # a new outage, after a while of serving
                log.warning("lost Redis (%s); reconnecting in %.1fs", exc, backoff.delay)
                await backoff.wait(stop.is_set)  # a stop during the outage ends the wait

    async def _sweep_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception as exc:  # the sweep must outlive a Redis outage: it is the net
                if not lost_redis(exc):
                    raise
                log.warning("sweep: lost Redis (%s); sweeping again later", exc)
            try:
                await asyncio.wait_for(stop.wait(), self.sweep_interval)
            except TimeoutError:
                pass

    async def sweep(self) -> None:
        """Advance the unfinished runs this orchestrator has not advanced for a while: a run
        whose notice was lost, or whose orchestrator died, is picked up.

        "A while" is one sweep interval after a move on a notice, so a run that was moving
        along is repaired within two intervals. A run the sweep itself advanced was waiting
        (for a slow node, most likely): it is swept again after twice as long each time, up to
        SWEEP_BACKOFF intervals. Sweeping every run in flight every interval cost a move per
        run each time: with 5,000 runs waiting on a slow node, 40 % of a core and 16,000
        Redis commands a second.
        """
        now = asyncio.get_running_loop().time()
        active: set[str] = set()
        for name in self.graphs:
            for run_id in await self.store.active_runs(name):
                active.add(run_id)
                moved, wait = self._moved.get(run_id, (now, 0.0))
                if run_id not in self._busy and now - moved >= wait:
                    self.poke(run_id, swept=True)
        self._moved = {run_id: m for run_id, m in self._moved.items() if run_id in active}

    def poke(self, run_id: str, swept: bool = False) -> None:
        """Advance `run_id` soon; if it is being advanced right now, once more afterwards."""
        if run_id in self._busy:
            self._dirty.add(run_id)
            return
        self._busy[run_id] = asyncio.create_task(self._advance_while_dirty(run_id, swept))

    async def _advance_while_dirty(self, run_id: str, swept: bool) -> None:
        try:
            async with self._slots:
                while True:
                    self._dirty.discard(run_id)
                    try:
                        await self.advance(run_id)
                    except Exception:
                        log.exception("advancing run %s failed; the sweep will retry", run_id)
                        return
                    self._note_moved(run_id, swept)
                    if run_id not in self._dirty:
                        return
                    swept = False  # (the sweep leaves busy runs alone: a notice came)
        finally:
            self._busy.pop(run_id, None)

    def _note_moved(self, run_id: str, swept: bool) -> None:
        wait = self.sweep_interval
        if swept and run_id in self._moved:
            wait = min(2 * self._moved[run_id][1], SWEEP_BACKOFF * self.sweep_interval)
        self._moved[run_id] = (asyncio.get_running_loop().time(), wait)

    async def advance(self, run_id: str) -> None:
        """Do whatever is due for the run; safe to call any number of times, from anywhere."""
        record, outcomes = await self.store.load_step(run_id)
        while record is not None:  # `outcomes`: of its step's tasks, when known (or None)
            if record.status in protocol.FINAL_STATUSES:
                # Finished, yet still active: it ended under a version whose finishing
                # commit did not retire runs (an upgrade).
                if await self.store.is_active(record):
                    await self.store.retire(record, self.retention)
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
                if record.checkpoint is not None:  # its queued tasks need not start
                    tasks = [t.id for t in record.checkpoint.tasks]
                    await self.jobs.drop(record, tasks)
                if await self._finish(record, "cancelled", {"status": "cancelled"}):
                    return
            elif record.status == "pending":
                try:
                    started = await self._start(graph, record)
                except (EmptyInputError, InvalidInputError, InvalidUpdateError, ResumeError) as exc:
                    await self._fail(record, exc)
                else:
                    if started is not None:  # our commit won: go on from it without a read
                        record, new = started
                        outcomes = {} if new else None
                        continue
            else:
                step = await self._step(graph, record, outcomes)
                if isinstance(step, RunRecord):  # our commit won: go on from it without a read
                    record, outcomes = step, {}  # (its tasks have no outcomes yet)
                    continue
                if not step:
                    return
            record, outcomes = await self.store.load_step(run_id)

    async def _start(
        self, graph: CompiledStateGraph, record: RunRecord
    ) -> tuple[RunRecord, bool] | None:
        """Put a pending run on its first position (see `orchestrator.starts`). Returns the
        run as committed and whether its step is new (has no outcomes yet), or None when
        another orchestrator started it first."""
        first = await first_position(self.store, graph, record)
        saved = first.saved
        started = {"fingerprint": graph.fingerprint, "first_checkpoint": saved.id,
                   "first_step": saved.checkpoint.step}
        if not await self.store.commit(record, status="running", saved=saved, new=first.new,
                                       fields={k: str(v) for k, v in started.items()},
                                       edit=first.edit, events=first.events):
            return None
        return self.store.remember_run(record.model_copy(update={
            "status": "running", "version": record.version + 1, "checkpoint_id": saved.id,
            "saved": saved, "input": None, **started,
        })), first.new

    async def _step(
        self, graph: CompiledStateGraph, record: RunRecord,
        known: dict[str, TaskOutcome] | None = None,
    ) -> RunRecord | bool:
        """One move of a running run, whose step's outcomes are `known` (read with the run,
        or none yet for a step just committed) or to be read. Returns False when nothing more
        is due, True when the run must be read again, or the run as this move committed it,
        to go on from without reading it back."""
        saved = record.saved
        assert saved is not None
        checkpoint = saved.checkpoint
        if not checkpoint.tasks:  # a finished thread resumed: nothing to run, nothing to save
            end = {"status": "done", "output": self._output(graph, checkpoint),
                   "checkpoint_id": saved.id}
            return not await self._finish(record, "done", end)
        task_ids = [t.id for t in checkpoint.tasks]
        if known is None:
            outcomes = await self.store.outcomes(record.tag, saved.id, task_ids)
        else:
            outcomes = dict(known)
        given = _given(graph, checkpoint)
        for task in checkpoint.tasks:
            if task.id in given:
                outcomes[task.id] = given_outcome(task)
        if (
            saved.id != record.first_checkpoint
            and any(t.node in graph.interrupt_before for t in checkpoint.tasks)
            and not any(t.id in outcomes for t in checkpoint.tasks)
        ):
            return not await self._interrupt(graph, record, saved, outcomes)
        missing = [t for t in checkpoint.tasks if t.id not in outcomes]
        if missing:
            posted_by_workers = sum(1 for t in checkpoint.tasks if t.id not in given)
            await self.jobs.enqueue(record, checkpoint.step, missing, graph.fingerprint,
                                    expected=posted_by_workers)
            return False
        failures = [e for t in checkpoint.tasks if (e := outcomes[t.id].error) is not None]
        if failures:
            return not await self._fail(record, failures[0], view=self._view(graph, saved, outcomes))
        if any(o.interrupts for o in outcomes.values()):
            return not await self._interrupt(graph, record, saved, outcomes)
        try:
            nxt = next_checkpoint(graph.spec, checkpoint, outcomes)
        except Exception as exc:  # InvalidUpdateError, or a reducer that raised
            return not await self._fail(record, exc, view=self._view(graph, saved, outcomes))
        source = "update" if record.kind == "update" else "loop"
        new = new_checkpoint(record, nxt, source, saved.parent if saved.transient else saved.id)
        events: list[tuple[Any, Any]] = []
        if nxt.step_wrote and record.kind != "update":
            events.append(("values", graph.schema.output(nxt.values)))
        limit = int(record.config.get("recursion_limit", DEFAULT_RECURSION_LIMIT))
        if record.kind != "update" and exceeds_recursion_limit(nxt, limit, record.first_step):
            return not await self._fail(record, GraphRecursionError(
                f"Recursion limit of {limit} reached without hitting a stop condition. You can "
                "increase the limit by setting the `recursion_limit` config key."), events,
                view=new)
        if nxt.tasks and record.kind != "update":
            if any(t.node in graph.interrupt_after for t in checkpoint.tasks):
                return not await self._interrupt(graph, record, new, {}, events, new=True)
            moved = record.model_copy(update={
                "version": record.version + 1, "checkpoint_id": new.id, "saved": new,
            })
            jobs = self._jobs_with_commit(graph, moved)
            if not await self.store.commit(record, saved=new, new=True, events=events, jobs=jobs):
                return True  # another orchestrator moved the run first: read it again
            self.store.remember_run(moved)
            return False if jobs else moved  # (with its jobs enqueued, nothing is due)
        end = {"status": "done", "output": self._output(graph, nxt), "checkpoint_id": new.id}
        return not await self._finish(record, "done", end, saved=new, new=True, events=events)

    def _jobs_with_commit(self, graph: CompiledStateGraph, moved: RunRecord) -> ScriptCall | None:
        """The enqueue of a new step's jobs, to make with its commit (one round trip, and no
        moment when the step is committed and its jobs are not enqueued): when every task is
        a worker's, none stops at a breakpoint first, and they fit in one call. Otherwise the
        next move sees to them."""
        assert moved.saved is not None
        checkpoint = moved.saved.checkpoint
        if _given(graph, checkpoint) or any(t.node in graph.interrupt_before
                                            for t in checkpoint.tasks):
            return None
        return self.jobs.single_enqueue(moved, checkpoint.step, checkpoint.tasks,
                                        graph.fingerprint, expected=len(checkpoint.tasks))

    @staticmethod
    def _output(graph: CompiledStateGraph, checkpoint: Checkpoint) -> Any:
        return graph.output_schema.output(checkpoint.values) if checkpoint.wrote else None

    @staticmethod
    def _view(
        graph: CompiledStateGraph, saved: SavedCheckpoint, outcomes: dict[str, TaskOutcome]
    ) -> SavedCheckpoint:
        """The checkpoint with what `get_state` shows of its stopped step (its own values and
        tasks when the step's writes cannot be applied together)."""
        try:
            values, left = pending_view(graph.spec, saved.checkpoint, outcomes)
        except Exception:
            values, left = dict(saved.checkpoint.values), saved.checkpoint.tasks
        return saved.model_copy(update={
            "view_values": graph.schema.output(values), "view_next": [t.id for t in left]
        })

    async def _interrupt(
        self, graph: CompiledStateGraph, record: RunRecord, saved: SavedCheckpoint,
        outcomes: dict[str, TaskOutcome], events: Sequence[tuple[Any, Any]] = (),
        new: bool = False,
    ) -> bool:
        """Stop the run to wait for a human: at interrupts raised by nodes, or a breakpoint."""
        view = self._view(graph, saved, outcomes)
        output = dict(view.view_values or {})
        interrupts = [
            Interrupt(value, iid) for t in ordered(saved.checkpoint.tasks)
            for iid, value in (outcomes[t.id].interrupts if t.id in outcomes else ())
        ]
        if interrupts:
            output["__interrupt__"] = interrupts
        else:
            events = [*events, ("updates", {"__interrupt__": ()})]
        if any(o.succeeded for o in outcomes.values() if o.node != START):
            events = [*events, ("values", view.view_values)]  # the step's finished writes
        end = {"status": "interrupted", "output": output, "checkpoint_id": saved.id}
        return await self._finish(record, "interrupted", end, saved=view, new=new, events=events)

    async def _fail(
        self, record: RunRecord, exc: BaseException | ErrorInfo,
        events: Sequence[tuple[Any, Any]] = (), view: SavedCheckpoint | None = None,
    ) -> bool:
        error = exc if isinstance(exc, ErrorInfo) else ErrorInfo.of(exc)
        log.info("run %s failed: %s: %s", record.run_id, error.type, error.message)
        end = {"status": "failed", "error": protocol.encode_error(error)}
        new = view is not None and view.id != record.checkpoint_id
        return await self._finish(record, "failed", end, error=error, events=events, saved=view,
                                  new=new)

    async def _finish(
        self,
        record: RunRecord,
        status: str,
        end: dict[str, Any],
        *,
        saved: SavedCheckpoint | None = None,
        new: bool = False,
        error: ErrorInfo | None = None,
        events: Sequence[tuple[Any, Any]] = (),
    ) -> bool:
        return await self.store.commit(
            record, status=status, saved=saved, new=new, error=error,
            events=[*events, ("end", end)], retention=self.retention,
        )


def _given(graph: CompiledStateGraph, checkpoint: Checkpoint) -> set[str]:
    """The ids of the step's tasks whose outcomes are given, not run by workers: the input's
    and an update's writes (unless they go through a branch)."""
    return {t.id for t in checkpoint.tasks
            if (t.node == START or t.update) and t.node not in graph.branches}
