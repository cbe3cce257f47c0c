"""The orchestrator: walks runs from superstep to superstep as their tasks finish.

It is level-triggered: on any notice about a run (submitted, a task done, cancel) it reads the
run and does whatever is due — enqueue the current step's missing tasks, or, once every task has
an outcome, fold the writes and commit the next checkpoint with a compare-and-set on the run's
version. Doing the due thing twice is harmless (job ids are deterministic, the commit is a CAS),
so several orchestrators can serve one Redis, and a periodic sweep of unfinished runs repairs
any notice that was lost. The moves themselves are `arqgraph.orchestrator.moves`'s; a worker makes those
of the steps whose only task it ran, and the orchestrator is then not told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core.graphs import find_graph
from arqgraph.errors import (
    CheckpointPrunedError,
    CorruptDataError,
    EmptyInputError,
    GraphConflictError,
    GraphMismatchError,
    InvalidInputError,
    InvalidUpdateError,
    ResumeError,
    SerializationError,
)
from arqgraph.observe import logs
from arqgraph.orchestrator.moves import RunMover
from arqgraph.protocol import GraphInfo, RunRecord
from arqgraph.storage.connection import Backoff, lost_redis
from arqgraph.storage.dead_letters import set_aside_run
from arqgraph.storage.presence import Presence, live_queues, new_heartbeat, process_id
from arqgraph.storage.queue import JobQueue
from arqgraph.storage.runs import RunStore

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph

log = logging.getLogger("arqgraph.orchestrator")

SWEEP_BACKOFF = 16  # a run the sweep keeps finding waiting is swept this many intervals apart
WEEK = 7 * 24 * 3600
IDLE_SWEEPS = 10  # sweep intervals between two sweeps while no run is unfinished
WORKERLESS_GRACE = 5.0  # seconds without a live worker on its queue before it warns (workers
# started with the orchestrator take a moment to send their first heartbeat)


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
        history_depth: int = 0,
    ) -> None:
        self.store = RunStore(redis)
        self.jobs = JobQueue(redis, queue)
        self.graphs = {g.name: g for g in graphs}
        self._infos: list[GraphInfo] | None = None
        self.queue = queue
        self.sweep_interval = sweep_interval
        self.retention = retention
        self.name = process_id(self)
        self.presence = Presence(redis, "orchestrator")
        self.heartbeat = new_heartbeat(self.name, [queue], list(self.graphs))
        self.waiting_for_workers = False  # its queue has had no live worker for a while
        self.idle = False  # the last sweep found no unfinished run, and no note came since
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        # run id -> when this orchestrator last advanced it, and how long the sweep waits then
        self._moved: dict[str, tuple[float, float]] = {}
        self._slots = asyncio.Semaphore(max_parallel_runs)
        self.moves = RunMover(self.store, self.jobs, retention, history_depth)

    async def register(self) -> None:
        """Register the graphs for producers, refusing (GraphConflictError) a graph that a live
        orchestrator serves on another queue or with another fingerprint: its runs would
        reach workers that cannot run them. A dead orchestrator's registration is replaced."""
        others = [o for o in await self.presence.live() if o.id != self.name]
        for info in self.infos():
            known = await self.store.graph_info(info.name)
            holders = [o.id for o in others if info.name in o.graphs]
            if known is not None and holders and (known.queue, known.fingerprint) != (
                    info.queue, info.fingerprint):
                what = (f"queue {known.queue!r}, not {info.queue!r}" if known.queue != info.queue
                        else f"fingerprint {known.fingerprint}, not {info.fingerprint} "
                        "(another version of the graph)")
                raise GraphConflictError(
                    f"graph {info.name!r} is served by orchestrator {', '.join(holders)} with "
                    f"{what}; stop it first, or serve the graph under another name")
            await self.store.register_graph(info)
        await self.presence.beat(self.heartbeat)

    def infos(self) -> list[GraphInfo]:
        """The registrations of the graphs this orchestrator serves (drawn once: every sweep
        compares them with those in Redis)."""
        if self._infos is None:
            self._infos = [GraphInfo(name=g.name, fingerprint=g.fingerprint, queue=self.queue,
                                     entrypoint=g.returns_value, root=g.schema.kind == "root",
                                     drawing=g.drawing_data())
                           for g in self.graphs.values()]
        return self._infos

    async def _beat_forever(self, stop: asyncio.Event) -> None:
        """Say this orchestrator is alive, and warn (once) when its queue has no live worker:
        its runs would otherwise wait without a word. It beats every HEARTBEAT_INTERVAL while
        runs are unfinished or no worker listens; idle, every IDLE_HEARTBEAT_INTERVAL."""
        loop = asyncio.get_running_loop()
        workerless_since: float | None = None
        served = True
        while not stop.is_set():
            quiet = self.idle and served
            self.heartbeat.every = (protocol.IDLE_HEARTBEAT_INTERVAL if quiet
                                    else protocol.HEARTBEAT_INTERVAL)
            try:
                await self.presence.beat(self.heartbeat)
                served = self.queue in await live_queues(self.store.redis)
            except Exception as exc:  # the beat must outlive an outage, or a bad record
                if not lost_redis(exc):
                    log.exception("heartbeat failed; beating again in %ss",
                                  protocol.HEARTBEAT_INTERVAL)
                served = True  # (an outage is logged by the loop that serves)
            now = loop.time()
            workerless_since = None if served else (workerless_since or now)
            waiting = workerless_since is not None and (
                now - workerless_since >= WORKERLESS_GRACE)
            if waiting and not self.waiting_for_workers:
                log.warning("no live worker listens on queue %s: runs of %s are waiting for "
                            "workers", self.queue, ", ".join(self.graphs))
            elif served and self.waiting_for_workers:
                log.info("a worker listens on queue %s again", self.queue)
            self.waiting_for_workers = waiting
            try:
                await asyncio.wait_for(stop.wait(), self.heartbeat.every)
            except TimeoutError:
                pass

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set: react to notices, sweep unfinished runs now and then."""
        stop = stop or asyncio.Event()
        await self.register()
        log.info("orchestrator %s serving graphs %s", self.name, ", ".join(self.graphs))
        sweeper = asyncio.create_task(self._sweep_forever(stop))
        beats = asyncio.create_task(self._beat_forever(stop))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                # (a long blocking pop: a note wakes it at once, and so does `stop`)
                notes = asyncio.ensure_future(self.store.events.next_notes(
                    list(self.graphs), timeout=protocol.IDLE_HEARTBEAT_INTERVAL))
                await asyncio.wait({notes, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not notes.done():
                    notes.cancel()
                    await asyncio.gather(notes, return_exceptions=True)
                    break
                for note in notes.result():
                    if note.kind != "wake":
                        self.poke(note.run_id)
        finally:
            stopped.cancel()
            sweeper.cancel()
            beats.cancel()
            for task in list(self._busy.values()):
                task.cancel()
            await asyncio.gather(sweeper, beats, *self._busy.values(), return_exceptions=True)
            if stop.is_set():  # a clean stop: not alive any more (else the beat goes stale)
                with contextlib.suppress(Exception):
                    await self.presence.leave(self.name)

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
        """Sweep every interval while runs are unfinished; with none, every IDLE_SWEEPS
        intervals (a run submitted meanwhile wakes the orchestrator with its note: the
        sweep only repairs a note that was lost)."""
        while not stop.is_set():
            idle = False
            try:
                if not await self.store.graphs_registered(self.infos()):
                    await self.register()  # (a registration lost or set aside comes back)
                idle = self.idle = not await self.sweep()
            except Exception as exc:  # the sweep must outlive a Redis outage: it is the net
                if not lost_redis(exc):
                    raise
                log.warning("sweep: lost Redis (%s); sweeping again later", exc)
            try:
                await asyncio.wait_for(stop.wait(),
                                       self.sweep_interval * (IDLE_SWEEPS if idle else 1))
            except TimeoutError:
                pass

    async def sweep(self) -> bool:
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
        if not await self.store.any_active(list(self.graphs)):  # (idle: one command)
            self._moved.clear()
            return False
        for name in self.graphs:
            for run_id in await self.store.active_runs(name):
                active.add(run_id)
                moved, wait = self._moved.get(run_id, (now, 0.0))
                if run_id not in self._busy and now - moved >= wait:
                    self.poke(run_id, swept=True)
        self._moved = {run_id: m for run_id, m in self._moved.items() if run_id in active}
        return bool(active)

    def poke(self, run_id: str, swept: bool = False) -> None:
        """Advance `run_id` soon; if it is being advanced right now, once more afterwards."""
        self.idle = False
        if run_id in self._busy:
            self._dirty.add(run_id)
            return
        self._busy[run_id] = asyncio.create_task(self._advance_while_dirty(run_id, swept))

    async def _advance_while_dirty(self, run_id: str, swept: bool) -> None:
        logs.enter(run_id=run_id)  # (this task's own context: its log lines name the run)
        set_aside = False  # (a garbled record is set aside once)
        try:
            async with self._slots:
                while True:
                    self._dirty.discard(run_id)
                    try:
                        await self.advance(run_id)
                    except CorruptDataError as exc:  # set aside, then failed by the next pass
                        if set_aside or not await self._set_aside(run_id, exc):
                            return
                        set_aside = True
                        self._dirty.add(run_id)
                    except Exception:
                        log.exception("advancing run %s failed; the sweep will retry", run_id)
                        return
                    self._note_moved(run_id, swept)
                    if run_id not in self._dirty:
                        return
                    swept = False  # (the sweep leaves busy runs alone: a notice came)
        finally:
            self._busy.pop(run_id, None)

    async def _set_aside(self, run_id: str, exc: CorruptDataError) -> bool:
        """Set the garbled record of a run aside (`set_aside_run`), for the run to fail."""
        graph = next(iter(self.graphs))  # (the graph whose unfinished runs list it, if any)
        for name in self.graphs:
            if await self.store.redis.sismember(protocol.active_key(name), run_id):  # type: ignore[misc]
                graph = name
        try:
            await set_aside_run(self.store.redis, run_id, graph, str(exc))
        except Exception:
            log.exception("could not set aside the garbled record of run %s", run_id)
            return False
        self.store.cache.forget_run(run_id)
        return True

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
            graph = find_graph(self.graphs, record.graph)
            if graph is None:
                return
            if record.unreadable:  # a value this process cannot rebuild: fail, not retry
                error = CorruptDataError if record.garbled else SerializationError
                await self.moves.fail(record, error(
                    f"run {run_id} cannot be read here: {record.unreadable}"))
                return
            if record.fingerprint and record.fingerprint != graph.fingerprint:
                await self.moves.fail(record, GraphMismatchError(
                    f"run {run_id} was started with graph {record.graph!r} of fingerprint "
                    f"{record.fingerprint}, but this orchestrator has {graph.fingerprint}; "
                    "refusing to mix versions"))
                return
            if record.cancel_requested:
                if record.checkpoint is not None:  # its queued tasks need not start
                    tasks = [t.id for t in record.checkpoint.tasks]
                    await self.jobs.drop(record, tasks)
                if await self.store.commit(await self.moves.cancelled(graph, record)):
                    return
            elif record.status == "pending":
                try:
                    started = await self.moves.start(graph, record)
                except (EmptyInputError, InvalidInputError, InvalidUpdateError, ResumeError,
                        CheckpointPrunedError) as exc:
                    await self.moves.fail(record, exc)
                else:
                    if started is not None:  # our commit won: go on from it without a read
                        record, new = started
                        outcomes = {} if new else None
                        continue
            else:
                step = await self.moves.step(graph, record, outcomes)
                if isinstance(step, RunRecord):  # our commit won: go on from it without a read
                    record, outcomes = step, {}  # (its tasks have no outcomes yet)
                    continue
                if not step:
                    return
            record, outcomes = await self.store.load_step(run_id)
