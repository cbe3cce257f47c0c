"""The plan of a run's next move, from its record and its step's outcomes: the next checkpoint
(`arqgraph.core.pregel`) and the commit that moves the run on to it with its jobs, or that ends the run
there (`arqgraph.storage.commits`). No I/O, so that one planner serves both shells: the orchestrator makes
the commits it plans (`arqgraph.orchestrator.moves.RunMover`), and a worker that ran a step's only task
makes its plan with the post of the task's outcome, in the same round trip (`arqgraph.workers.runner`).
Each commit is a compare-and-set on the run's version: whoever makes a move, it is made once.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from arqgraph.constants import (
    CONFIG_KEY_DURABILITY,
    CONFIG_KEY_INTERRUPT_AFTER,
    CONFIG_KEY_INTERRUPT_BEFORE,
)
from arqgraph.core.pregel import (
    START,
    Checkpoint,
    Task,
    TaskOutcome,
    exceeds_recursion_limit,
    next_checkpoint,
)
from arqgraph.errors import ErrorInfo
from arqgraph.interrupts import asked_of
from arqgraph.observe import traces
from arqgraph.protocol import RunRecord, SavedCheckpoint, split_thread
from arqgraph.storage.commits import Commit, commit_call
from arqgraph.storage.namespaces import namespace, task_uuid
from arqgraph.storage.queue import JobQueue, ScriptCall
from arqgraph.storage.replay import CHECKPOINT_MAP, ancestors, checkpoint_map

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph

DEFAULT_RECURSION_LIMIT = 10007


class Move(NamedTuple):
    """A run's move on to its next step: the run as `moved` there, the `commit` that does it,
    whether that commit also `enqueues` the step's jobs, and whether it keeps the step's job
    off the ready list, `held` for the planner to take (see `MovePlanner.plan`)."""

    moved: RunRecord
    commit: Commit
    enqueues: bool
    held: bool = False


@dataclass(frozen=True)
class Plan:
    """What follows a step (`MovePlanner.plan`): the next checkpoint (`next`, `saved` as it is
    saved, with the `events` of its commit), and the `move` on to it when the run goes on, or
    the commit that ends the run there (`end`, done) when it ends; neither when it stops
    (past its recursion limit, or at a breakpoint), nor an end planned without a retention
    (a worker's plan, for a run started by an older orchestrator)."""

    next: Checkpoint
    saved: SavedCheckpoint
    events: list[tuple[Any, Any]]
    move: Move | None = None
    end: Commit | None = None


class MovePlanner:
    """Plans the moves of runs whose jobs go on one queue (`jobs`: only its calls are built,
    none made). `retention`: how many seconds a run's keys are kept once it ends, for a run
    that recorded none at its start (None for a worker's planner: it plans no such end)."""

    def __init__(self, jobs: JobQueue, retention: int | None = None) -> None:
        self.jobs = jobs
        self.retention = retention

    def plan(
        self, graph: CompiledStateGraph, record: RunRecord, outcomes: dict[str, TaskOutcome],
        hold: bool = False,
    ) -> Plan:
        """What follows the run's step, all of whose tasks have these outcomes (none failed or
        was interrupted): the next checkpoint, and when the run goes on to it (no end, no
        breakpoint, within the recursion limit) the commit that moves it there, or when it
        ends there the commit that ends it. The orchestrator makes the commit alone; a worker
        that ran the step's only task makes it with the post of its outcome, and, for a move on
        to a step of one task, when it will `hold` it, takes that task's job in that round trip
        too (the commit then does not list it as ready: see JobQueue.single_enqueue); the tasks
        of a wider step are all listed, to start together, none ahead of its siblings. Raises
        what applying the writes raises (InvalidUpdateError, or a reducer's error)."""
        saved = record.saved
        assert saved is not None
        checkpoint = saved.checkpoint
        nxt = next_checkpoint(graph.spec, checkpoint, outcomes)
        source = "update" if record.kind == "update" else "loop"
        new = new_checkpoint(record, nxt, source, saved.parent if saved.transient else saved.id)
        events: list[tuple[Any, Any]] = []
        if nxt.step_wrote and record.kind != "update" and record.records("values"):
            events.append(("values", graph.schema.output(nxt.values)))
        if record.records("checkpoints"):
            events.append(checkpoint_event(graph, record, new))
        over = exceeds_limit(record, nxt)
        if record.kind == "update" or (not nxt.tasks and not over):
            if record.retention is None and self.retention is None:  # (a worker's plan for a
                return Plan(nxt, new, events)  # run started by an older orchestrator)
            end = {"status": "done", "output": run_output(graph, nxt), "checkpoint_id": new.id}
            return Plan(nxt, new, events, end=self.ending(
                record, "done", end, saved=new, new=True, events=events))
        if not nxt.tasks or over or any(t.node in breakpoints(graph, record, "after")
                                        for t in checkpoint.tasks):
            return Plan(nxt, new, events)
        step_trace = traces.step_trace(record.trace, record.graph, record.run_id, nxt.step,
                                       len(nxt.tasks))
        moved = record.model_copy(update={
            "version": record.version + 1, "checkpoint_id": new.id, "saved": new,
            "step_trace": step_trace,
        })
        held = hold and len(nxt.tasks) == 1  # (the tasks of a wider step start together)
        jobs = self._jobs_with_commit(graph, moved, held)
        commit = commit_call(record, saved=new, new=True, events=events, jobs=jobs,
                             fields={"step_trace": step_trace} if step_trace else None)
        return Plan(nxt, new, events, Move(moved, commit, jobs is not None, held and bool(jobs)))

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
        then kept for the run's own retention, else this planner's."""
        retention = self.retention if record.retention is None else record.retention
        if saved is not None and saved.transient and not durable_steps(record) and not (
                status == "done" and nested_in_a_task(record)):
            saved, new = saved.model_copy(update={"transient": False}), True  # listed at last
        return commit_call(
            record, status=status, saved=saved, new=new, error=error,
            events=[*events, ("end", end)], retention=retention,
        )

    def _jobs_with_commit(
        self, graph: CompiledStateGraph, moved: RunRecord, hold: bool
    ) -> ScriptCall | None:
        """The enqueue of a new step's jobs, to make with its commit (one round trip, and no
        moment when the step is committed and its jobs are not enqueued): when every task is
        a worker's, none stops at a breakpoint first, and they fit in one call. Otherwise the
        next move sees to them."""
        assert moved.saved is not None
        checkpoint = moved.saved.checkpoint
        if given_tasks(graph, checkpoint) or any(t.node in breakpoints(graph, moved, "before")
                                                 for t in checkpoint.tasks):
            return None
        return self.jobs.single_enqueue(moved, checkpoint.step, checkpoint.tasks,
                                        graph.fingerprint, len(checkpoint.tasks), hold)


def breakpoints(graph: CompiledStateGraph, record: RunRecord, when: str) -> frozenset[str]:
    """The nodes the run stops before (`when="before"`) or after: those its caller gave
    (`invoke(interrupt_before=...)`), else the graph's."""
    key = CONFIG_KEY_INTERRUPT_BEFORE if when == "before" else CONFIG_KEY_INTERRUPT_AFTER
    given = (record.config.get("configurable") or {}).get(key)
    if given is not None:
        return frozenset(graph.nodes) if given == "*" else frozenset(given)
    return graph.interrupt_before if when == "before" else graph.interrupt_after


def durable_steps(record: RunRecord) -> bool:
    """Whether the run's steps go in its thread's history as they are made: unless it was
    started with `durability="exit"`, which lists only the checkpoint it ends at (each step
    is still saved, transient, so that a crash loses nothing)."""
    return (record.config.get("configurable") or {}).get(CONFIG_KEY_DURABILITY) != "exit"


def nested_in_a_task(record: RunRecord) -> bool:
    """Whether the run is a subgraph's in a namespace of a task of its own (`node:task`): with
    `durability="exit"`, LangGraph keeps no checkpoint of it once it is done (one of a
    subgraph compiled with `checkpointer=True`, namespaced by node only, it keeps)."""
    namespace = str((record.config.get("configurable") or {}).get("checkpoint_ns") or "")
    return any(":" in part for part in namespace.split("|")) if namespace else False


def new_checkpoint(
    record: RunRecord, checkpoint: Checkpoint, source: Any, parent: str | None,
    transient: bool = False,
) -> SavedCheckpoint:
    return SavedCheckpoint(
        id=str(uuid.uuid4()), parent=parent, source=source, run_id=record.run_id,
        created_at=datetime.now(UTC).isoformat(), checkpoint=checkpoint,
        transient=transient or not durable_steps(record), parents=checkpoint_parents(record),
    )


def checkpoint_parents(record: RunRecord) -> dict[str, str]:
    """The checkpoints of the graphs above a subgraph's run, by namespace, as its checkpoints
    record them (see `arqgraph.storage.replay`); none for a root graph's run."""
    namespace = str((record.config.get("configurable") or {}).get("checkpoint_ns") or "")
    return ancestors(checkpoint_map(record.config), namespace)


def checkpoint_event(
    graph: CompiledStateGraph, record: RunRecord, saved: SavedCheckpoint,
    asked: Mapping[str, Sequence[Sequence[Any]]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The "checkpoints" event of a checkpoint saved: LangGraph's payload (its config and its
    parent's, values, metadata, next nodes, tasks, with the questions `asked` by task id),
    with the step and time "debug" shows."""
    thread_id, namespace = split_thread(record.thread_id)
    if not record.keep:  # (a run without a thread of its own: its namespace is in its config)
        thread_id = str((record.config.get("configurable") or {}).get("thread_id", thread_id))
        namespace = str((record.config.get("configurable") or {}).get("checkpoint_ns", ""))

    def config(checkpoint_id: str) -> dict[str, Any]:  # (as the thread's history shows it)
        configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": namespace,
                                        "checkpoint_id": checkpoint_id}
        if saved.parents:
            configurable[CHECKPOINT_MAP] = {**saved.parents, namespace: checkpoint_id}
        return {"configurable": configurable}

    checkpoint = saved.checkpoint
    payload: dict[str, Any] = {
        "config": config(saved.id),
        "parent_config": config(saved.parent) if saved.parent else None,
        "values": checkpoint.values.get("output") if graph.returns_value else  # (its value)
        graph.schema.output(checkpoint.values),
        "metadata": {"source": saved.source, "step": checkpoint.step,
                     "parents": dict(saved.parents)},
        "next": [t.node for t in checkpoint.tasks],
        "tasks": [{"id": t.id, "name": t.node, "interrupts": tuple(
                       dataclasses.asdict(i) for i in asked_of((asked or {}).get(t.id, ()))),
                   "state": _subgraph_state(graph, record, saved.id, t, thread_id)}
                  for t in checkpoint.tasks],
    }
    return "checkpoints", {"step": checkpoint.step, "timestamp": saved.created_at,
                           "payload": payload}


def _subgraph_state(graph: CompiledStateGraph, record: RunRecord, checkpoint_id: str,
                    task: Task, thread_id: str) -> dict[str, Any] | None:
    """Where a task whose node is a subgraph keeps the subgraph's state (the config its
    snapshot shows as the task's `state`, as LangGraph shows it); None for other tasks."""
    node = getattr(graph.nodes.get(task.node), "fn", None)
    subgraph = getattr(node, "graph", None) if getattr(node, "streams_inside", False) else None
    if subgraph is None:
        return None
    shown = task_uuid(record, checkpoint_id, task.id)
    return {"configurable": {"thread_id": thread_id,
                             "checkpoint_ns": namespace(record, task.node, shown, subgraph, 0)}}


def task_event(task: Task, step: int, shown_id: str, **payload: Any) -> tuple[str, dict[str, Any]]:
    """A "tasks" event: a task's start (its `input` and `triggers`) or its result (`error`,
    `result`, `interrupts`), with the step and time "debug" shows (as LangGraph's, the step
    after the checkpoint that planned the task). `shown_id` is the task's UUID, the one its
    subgraphs' namespaces end with, which is how a stream pairs a subgraph with its task."""
    return "tasks", {"step": step + 1, "timestamp": datetime.now(UTC).isoformat(),
                     "payload": {"id": shown_id, "name": task.node, **payload}}


def recursion_limit(record: RunRecord) -> int:
    return int(record.config.get("recursion_limit", DEFAULT_RECURSION_LIMIT))


def exceeds_limit(record: RunRecord, nxt: Checkpoint) -> bool:
    """Whether the run, on to `nxt`, would pass its recursion limit (counted from its start)."""
    return exceeds_recursion_limit(nxt, recursion_limit(record), record.first_step)


def run_output(graph: CompiledStateGraph, checkpoint: Checkpoint) -> Any:
    return graph.output_schema.output(checkpoint.values) if checkpoint.wrote else None


def given_tasks(graph: CompiledStateGraph, checkpoint: Checkpoint) -> set[str]:
    """The ids of the step's tasks whose outcomes are given, not run by workers: the input's
    and an update's writes (unless they go through a branch)."""
    return {t.id for t in checkpoint.tasks
            if (t.node == START or t.update) and t.node not in graph.branches}
