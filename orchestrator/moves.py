"""The moves of a run: from its input to its first step, from a step whose tasks all have
outcomes to the next, or to its end. Each move is one compare-and-set commit on the run's
version (`RunStore.commit`), so whoever makes it, it is made once: the orchestrator, for every
run, and a worker, for the run whose step's only task it has just run: it plans the move on to
the next step or to the run's end (`RunMover.plan`) and makes it with the post of the task's
outcome, in one round trip, without the orchestrator's wake-up and read (a run that stops or
fails there is left to the orchestrator, which the post then tells). The algorithm is `shared.pregel`'s; this
module decides what to commit and commits it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from orchestrator.starts import first_position, new_checkpoint
from shared import protocol
from shared.commits import Commit, commit_call
from shared.errors import ErrorInfo, GraphRecursionError
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
from shared.protocol import RunRecord, SavedCheckpoint
from shared.queue import JobQueue, ScriptCall
from shared.store import RunStore
from shared.types import Interrupt

log = logging.getLogger("arqgraph.orchestrator")

DEFAULT_RECURSION_LIMIT = 10007


class Move(NamedTuple):
    """A run's move on to its next step: the run as `moved` there, the `commit` that does it,
    whether that commit also `enqueues` the step's jobs, and whether it keeps the step's job
    off the ready list, `held` for the planner to take (see `RunMover.plan`)."""

    moved: RunRecord
    commit: Commit
    enqueues: bool
    held: bool = False


@dataclass(frozen=True)
class Plan:
    """What follows a step (`RunMover.plan`): the next checkpoint (`next`, `saved` as it is
    saved, with the `events` of its commit), and the `move` on to it when the run goes on, or
    the commit that ends the run there (`end`, done) when it ends; neither when it stops
    (past its recursion limit, or at a breakpoint), nor an end planned without a retention
    (a worker's plan, for a run started by an older orchestrator)."""

    next: Checkpoint
    saved: SavedCheckpoint
    events: list[tuple[Any, Any]]
    move: Move | None = None
    end: Commit | None = None


class RunMover:
    """Makes the moves of runs on one Redis. `retention`: how many seconds the keys of the
    runs it starts are kept once they end (recorded with each run, for whoever ends it; None
    for a worker's mover, which starts none)."""

    def __init__(self, store: RunStore, jobs: JobQueue, retention: int | None = None) -> None:
        self.store = store
        self.jobs = jobs
        self.retention = retention

    async def start(
        self, graph: CompiledStateGraph, record: RunRecord
    ) -> tuple[RunRecord, bool] | None:
        """Put a pending run on its first position (see `orchestrator.starts`). Returns the
        run as committed and whether its step is new (has no outcomes yet), or None when
        another orchestrator started it first."""
        first = await first_position(self.store, graph, record)
        saved = first.saved
        started = {"fingerprint": graph.fingerprint, "first_checkpoint": saved.id,
                   "first_step": saved.checkpoint.step}
        if self.retention is not None:
            started["retention"] = self.retention
        if not await self.store.commit(commit_call(
                record, status="running", saved=saved, new=first.new,
                fields={k: str(v) for k, v in started.items()}, edit=first.edit,
                events=first.events)):
            return None
        return self.store.remember_run(record.model_copy(update={
            "status": "running", "version": record.version + 1, "checkpoint_id": saved.id,
            "saved": saved, "input": None, **started,
        })), first.new

    async def step(
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
            return not await self.store.commit(self.ending(record, "done", end))
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
            return not await self.fail(record, failures[0], view=self._view(graph, saved, outcomes))
        if any(o.interrupts for o in outcomes.values()):
            return not await self._interrupt(graph, record, saved, outcomes)
        try:
            plan = self.plan(graph, record, outcomes)
        except Exception as exc:  # InvalidUpdateError, or a reducer that raised
            return not await self.fail(record, exc, view=self._view(graph, saved, outcomes))
        if plan.move is not None:  # on to the next step
            moved, commit, enqueues, _ = plan.move
            if not await self.store.commit(commit):
                return True  # another process moved the run first (or it is being cancelled)
            self.store.remember_run(moved)
            return False if enqueues else moved  # (its jobs enqueued: nothing is due)
        if plan.end is not None:
            return not await self.store.commit(plan.end)
        nxt, new, events = plan.next, plan.saved, plan.events
        if record.kind != "update" and self._exceeds_limit(record, nxt):
            limit = self._limit(record)
            return not await self.fail(record, GraphRecursionError(
                f"Recursion limit of {limit} reached without hitting a stop condition. You can "
                "increase the limit by setting the `recursion_limit` config key."), events,
                view=new)
        if nxt.tasks and record.kind != "update":  # a breakpoint after the step's nodes
            return not await self._interrupt(graph, record, new, {}, events, new=True)
        raise ValueError(f"run {record.run_id} ends, but no retention is known for it")

    def plan(
        self, graph: CompiledStateGraph, record: RunRecord, outcomes: dict[str, TaskOutcome],
        hold: bool = False,
    ) -> Plan:
        """What follows the run's step, all of whose tasks have these outcomes (none failed or
        was interrupted): the next checkpoint, and when the run goes on to it (no end, no
        breakpoint, within the recursion limit) the commit that moves it there, or when it
        ends there the commit that ends it. No I/O: the orchestrator makes the commit
        (`step`); a worker that ran the step's only task makes it with the post of its
        outcome, in the same round trip, and, for a move on to a step of one task, when it will
        `hold` it, takes that task's job in that round trip too (the commit then does not list
        it as ready: see JobQueue.single_enqueue); the tasks of a wider step are all listed, to
        start together, none ahead of its siblings. Raises what applying the writes raises
        (InvalidUpdateError, or a reducer's error)."""
        saved = record.saved
        assert saved is not None
        checkpoint = saved.checkpoint
        nxt = next_checkpoint(graph.spec, checkpoint, outcomes)
        source = "update" if record.kind == "update" else "loop"
        new = new_checkpoint(record, nxt, source, saved.parent if saved.transient else saved.id)
        events: list[tuple[Any, Any]] = []
        if nxt.step_wrote and record.kind != "update":
            events.append(("values", graph.schema.output(nxt.values)))
        over = self._exceeds_limit(record, nxt)
        if record.kind == "update" or (not nxt.tasks and not over):
            if record.retention is None and self.retention is None:  # (a worker's plan for a
                return Plan(nxt, new, events)  # run started by an older orchestrator)
            end = {"status": "done", "output": self._output(graph, nxt), "checkpoint_id": new.id}
            return Plan(nxt, new, events, end=self.ending(
                record, "done", end, saved=new, new=True, events=events))
        if not nxt.tasks or over or any(t.node in graph.interrupt_after for t in checkpoint.tasks):
            return Plan(nxt, new, events)
        moved = record.model_copy(update={
            "version": record.version + 1, "checkpoint_id": new.id, "saved": new,
        })
        held = hold and len(nxt.tasks) == 1  # (the tasks of a wider step start together)
        jobs = self._jobs_with_commit(graph, moved, held)
        commit = commit_call(record, saved=new, new=True, events=events, jobs=jobs)
        return Plan(nxt, new, events, Move(moved, commit, jobs is not None, held and bool(jobs)))

    @staticmethod
    def _limit(record: RunRecord) -> int:
        return int(record.config.get("recursion_limit", DEFAULT_RECURSION_LIMIT))

    def _exceeds_limit(self, record: RunRecord, nxt: Checkpoint) -> bool:
        return exceeds_recursion_limit(nxt, self._limit(record), record.first_step)

    def _jobs_with_commit(
        self, graph: CompiledStateGraph, moved: RunRecord, hold: bool
    ) -> ScriptCall | None:
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
                                        graph.fingerprint, len(checkpoint.tasks), hold)

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
        return await self.store.commit(
            self.ending(record, "interrupted", end, saved=view, new=new, events=events))

    async def fail(
        self, record: RunRecord, exc: BaseException | ErrorInfo,
        events: Sequence[tuple[Any, Any]] = (), view: SavedCheckpoint | None = None,
    ) -> bool:
        error = exc if isinstance(exc, ErrorInfo) else ErrorInfo.of(exc)
        log.info("run %s failed: %s: %s", record.run_id, error.type, error.message)
        end = {"status": "failed", "error": protocol.encode_error(error)}
        new = view is not None and view.id != record.checkpoint_id
        return await self.store.commit(
            self.ending(record, "failed", end, error=error, events=events, saved=view, new=new))

    def ending(
        self,
        record: RunRecord,
        status: str,
        end: dict[str, Any],
        *,
        saved: SavedCheckpoint | None = None,
        new: bool = False,
        error: ErrorInfo | None = None,
        events: Sequence[tuple[Any, Any]] = (),
    ) -> Commit:
        """The commit that ends the run (with its last checkpoint, error, events;
        `RunStore.commit` returns False when another process moved it first). Its keys are
        then kept for the run's own retention, else this mover's."""
        retention = self.retention if record.retention is None else record.retention
        return commit_call(
            record, status=status, saved=saved, new=new, error=error,
            events=[*events, ("end", end)], retention=retention,
        )


def _given(graph: CompiledStateGraph, checkpoint: Checkpoint) -> set[str]:
    """The ids of the step's tasks whose outcomes are given, not run by workers: the input's
    and an update's writes (unless they go through a branch)."""
    return {t.id for t in checkpoint.tasks
            if (t.node == START or t.update) and t.node not in graph.branches}
