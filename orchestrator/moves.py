"""The orchestrator's moves of a run: from its input to its first step, from a step whose tasks
all have outcomes to the next (planned by `arqgraph.storage.moves.MovePlanner`), or to its end: done,
failed, interrupted, cancelled. Each move is one compare-and-set commit on the run's version
(`RunStore.commit`), so whoever makes it, it is made once: a worker makes the moves after a
step whose only task it ran (with the post of the task's outcome, from the same planner) and
leaves to the orchestrator a run that stops or fails there, telling it with the post.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from arqgraph import observe, protocol
from arqgraph.core.graphs import subgraph_key
from arqgraph.core.pregel import START, TaskOutcome, given_outcome, ordered, pending_view
from arqgraph.errors import ErrorInfo, GraphRecursionError
from arqgraph.interrupts import asked_of
from arqgraph.observe import traces
from arqgraph.orchestrator.starts import first_position
from arqgraph.protocol import RunRecord, SavedCheckpoint
from arqgraph.storage.commits import Commit, commit_call
from arqgraph.storage.moves import (
    MovePlanner,
    breakpoints,
    exceeds_limit,
    given_tasks,
    recursion_limit,
    run_output,
)
from arqgraph.storage.queue import JobQueue
from arqgraph.storage.runs import RunStore

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph

log = logging.getLogger("arqgraph.orchestrator")


class RunMover(MovePlanner):
    """Plans and makes the moves of runs on one Redis. `retention`: how many seconds the keys
    of the runs it starts are kept once they end; `history_depth`: how many checkpoints their
    threads keep (0: every one). Both are recorded with each run, for whoever commits it."""

    def __init__(self, store: RunStore, jobs: JobQueue, retention: int | None = None,
                 history_depth: int = 0) -> None:
        super().__init__(jobs, retention)
        self.store = store
        self.history_depth = history_depth

    async def start(
        self, graph: CompiledStateGraph, record: RunRecord
    ) -> tuple[RunRecord, bool] | None:
        """Put a pending run on its first position (see `arqgraph.orchestrator.starts`). Returns the
        run as committed and whether its step is new (has no outcomes yet), or None when
        another orchestrator started it first."""
        first = await first_position(self.store, graph, record)
        saved = first.saved
        started = {"fingerprint": graph.fingerprint, "first_checkpoint": saved.id,
                   "first_step": saved.checkpoint.step}
        if self.retention is not None:
            started["retention"] = self.retention
        if self.history_depth > 0:
            started["history_depth"] = self.history_depth
        step_trace = traces.step_trace(record.trace, graph.name, record.run_id,
                                       saved.checkpoint.step, len(saved.checkpoint.tasks))
        if step_trace:
            started["step_trace"] = step_trace
        if not await self.store.commit(commit_call(
                record, status="running", saved=saved, new=first.new,
                fields={k: str(v) for k, v in started.items()}, edit=first.edit,
                events=first.events)):
            return None
        observe.current().run_started(record.graph)
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
        if record.kind == "update" and not saved.transient and saved.id == record.first_checkpoint:
            # an update that is its checkpoint (as input, a copy, tasks dropped): saved, done
            end = {"status": "done", "output": None, "checkpoint_id": saved.id}
            return not await self.store.commit(self.ending(record, "done", end))
        if not checkpoint.tasks:  # a finished thread resumed: nothing to run, nothing to save
            end = {"status": "done", "output": run_output(graph, checkpoint),
                   "checkpoint_id": saved.id}
            return not await self.store.commit(self.ending(record, "done", end))
        task_ids = [t.id for t in checkpoint.tasks]
        if known is None:
            outcomes = await self.store.outcomes(record.tag, saved.id, task_ids)
        else:
            outcomes = dict(known)
        given = given_tasks(graph, checkpoint)
        if record.drain and not outcomes and all(t.id in given for t in checkpoint.tasks):
            # asked to stop before the run's first step: nothing ran, its input is saved
            return not await self._drained(graph, record, saved)
        for task in checkpoint.tasks:
            if task.id in given:
                outcomes[task.id] = given_outcome(task)
        if (
            saved.id != record.first_checkpoint
            and any(t.node in breakpoints(graph, record, "before") for t in checkpoint.tasks)
            and not any(t.id in outcomes for t in checkpoint.tasks)
        ):
            return not await self._interrupt(graph, record, saved, outcomes, at="interrupt_before")
        missing = [t for t in checkpoint.tasks if t.id not in outcomes]
        failures = [e for t in checkpoint.tasks if (o := outcomes.get(t.id)) and (e := o.error)]
        # an answer its interrupt refused (it asks again) lets the step's other nodes finish
        refused = all(o.interrupts for o in outcomes.values() if o.error)
        if failures and not (refused and missing):
            # as LangGraph: the run fails at once, its step's other nodes cancelled
            failed = await self.fail(record, failures[0], view=self._view(graph, saved, outcomes))
            if failed and missing:
                await self.jobs.drop(record, [t.id for t in missing])
                await self.store.stop_nodes(record.run_id)
            return not failed
        if missing:
            posted_by_workers = sum(1 for t in checkpoint.tasks if t.id not in given)
            await self.jobs.enqueue(record, checkpoint.step, missing, graph.fingerprint,
                                    expected=posted_by_workers)
            return False
        if any(o.interrupts for o in outcomes.values()):
            return not await self._interrupt(graph, record, saved, outcomes)
        try:
            plan = self.plan(graph, record, outcomes)
        except Exception as exc:  # InvalidUpdateError, or a reducer that raised
            return not await self.fail(record, exc, view=self._view(graph, saved, outcomes))
        if plan.move is not None and record.drain and any(
                t.node in breakpoints(graph, record, "before") for t in plan.next.tasks):
            # asked to stop here, before a breakpoint: stop at the breakpoint (a resume of a
            # drained run would pass it)
            return not await self._interrupt(graph, record, plan.saved, {}, plan.events,
                                             new=True, at="interrupt_before")
        if plan.move is not None and record.drain:  # asked to stop here: the step is saved
            return not await self._drained(graph, record, plan.saved, plan.events)
        if plan.move is not None:  # on to the next step
            moved, commit, enqueues, _ = plan.move
            if not await self.store.commit(commit):
                return True  # another process moved the run first (or it is being cancelled)
            self.store.remember_run(moved)
            return False if enqueues else moved  # (its jobs enqueued: nothing is due)
        if plan.end is not None:
            return not await self.store.commit(plan.end)
        nxt, new, events = plan.next, plan.saved, plan.events
        if record.kind != "update" and exceeds_limit(record, nxt):
            limit = recursion_limit(record)
            return not await self.fail(record, GraphRecursionError(
                f"Recursion limit of {limit} reached without hitting a stop condition. You can "
                "increase the limit by setting the `recursion_limit` config key."), events,
                view=new)
        if nxt.tasks and record.kind != "update":  # a breakpoint after the step's nodes
            return not await self._interrupt(graph, record, new, {}, events, new=True,
                                             at="interrupt_after")
        raise ValueError(f"run {record.run_id} ends, but no retention is known for it")

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
        new: bool = False, at: str = "pending",
    ) -> bool:
        """Stop the run to wait for a human: at interrupts raised by nodes, or a breakpoint
        (`at` says which, as LangGraph's lifecycle callbacks tell it)."""
        view = self._view(graph, saved, outcomes)
        output = dict(view.view_values or {})
        interrupts = [
            asked for t in ordered(saved.checkpoint.tasks)
            for asked in asked_of(outcomes[t.id].interrupts if t.id in outcomes else ())
        ]
        if interrupts:
            output["__interrupt__"] = interrupts
        elif subgraph_key(record.graph) is None:  # a breakpoint (told by the root run only)
            events = [*events, ("updates", {"__interrupt__": ()})]
        if any(o.succeeded for o in outcomes.values() if o.node != START):
            events = [*events, ("values", view.view_values)]  # the step's finished writes
        end = {"status": "interrupted", "output": output, "checkpoint_id": saved.id,
               "loop_status": at}
        return await self.store.commit(
            self.ending(record, "interrupted", end, saved=view, new=new, events=events))

    async def _drained(
        self, graph: CompiledStateGraph, record: RunRecord, saved: SavedCheckpoint,
        events: Sequence[tuple[Any, Any]] = (),
    ) -> bool:
        """End the run, asked to drain, at `saved` (a new checkpoint unless it is the run's
        own): interrupted, to be resumed; its caller gets GraphDrained."""
        end = {"status": "interrupted", "drained": record.drain, "checkpoint_id": saved.id,
               "output": graph.output_schema.output(saved.checkpoint.values)}
        new = saved.id != record.checkpoint_id
        return await self.store.commit(self.ending(
            record, "interrupted", end, saved=saved if new else None, new=new, events=events))

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

    async def cancelled(self, graph: CompiledStateGraph, record: RunRecord) -> Commit:
        """The commit that ends the run, cancelled: its step stays the thread's state, shown
        with the writes of the tasks it finished, as LangGraph applies a cancelled step's
        pending writes (the others run again when the thread is resumed)."""
        saved = record.saved
        if saved is None or not saved.checkpoint.tasks:
            return self.ending(record, "cancelled", {"status": "cancelled"})
        outcomes = await self.store.outcomes(record.tag, saved.id,
                                             [t.id for t in saved.checkpoint.tasks])
        view = self._view(graph, saved, outcomes) if outcomes else None
        return self.ending(record, "cancelled", {"status": "cancelled"}, saved=view)
