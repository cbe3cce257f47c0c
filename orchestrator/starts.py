"""Where a pending run starts: a new checkpoint for an input, an update or a fork (from an older
checkpoint of the thread); the thread's latest checkpoint for a resume, minus the outcomes of the
tasks to run again, with the values that resume its interrupts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arqgraph.constants import COPY_NODE, INPUT_NODE
from arqgraph.core.pregel import (
    END,
    START,
    Checkpoint,
    TaskOutcome,
    cleared_checkpoint,
    command_checkpoint,
    entry_checkpoint,
    first_checkpoint,
    fork_checkpoint,
    given_outcome,
    update_checkpoint,
)
from arqgraph.core.schema import ROOT
from arqgraph.errors import EmptyInputError, InvalidUpdateError, ResumeError
from arqgraph.interrupts import BREAKPOINT, interrupt_id
from arqgraph.protocol import RunRecord, SavedCheckpoint
from arqgraph.storage.commits import WritesEdit
from arqgraph.storage.moves import checkpoint_event, new_checkpoint
from arqgraph.storage.replay import REPLAY, checkpoint_map
from arqgraph.storage.runs import RunStore

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph


@dataclass(frozen=True)
class FirstPosition:
    """A run's first checkpoint (`new`: made for it, not the thread's own), the edits of its
    pending writes and the events the run starts with."""

    saved: SavedCheckpoint
    new: bool
    edit: WritesEdit | None = None
    events: list[tuple[Any, Any]] = field(default_factory=list)


async def first_position(
    store: RunStore, graph: CompiledStateGraph, record: RunRecord
) -> FirstPosition:
    """Where the pending run `record` starts; raises EmptyInputError, InvalidInputError,
    InvalidUpdateError or ResumeError for a run that cannot start."""
    latest = await store.threads.latest_checkpoint(record.tag)
    base = latest
    if record.from_checkpoint:  # (one the thread does not have: as LangGraph, none at all)
        base = await store.threads.named_checkpoint(record.tag, record.from_checkpoint)
    edit: WritesEdit | None = None
    events: list[tuple[Any, Any]] = []
    if record.kind == "input":
        if record.input is None:
            raise EmptyInputError("Received no input for __start__")
        writes = graph.input_schema.input_writes(record.input)
        if graph.returns_value:  # (an entrypoint: its node due at once, as LangGraph's)
            checkpoint = entry_checkpoint(graph.schema, writes, next(iter(graph.nodes)),
                                          base.checkpoint if base else None)
        else:
            checkpoint = first_checkpoint(graph.schema, writes,
                                          base.checkpoint if base else None)
        saved = new_checkpoint(record, checkpoint, "input", base.id if base else None)
    elif record.kind == "update":
        saved, edit = await _updated(store, graph, record, base)
    elif record.input is not None and base is None:
        # Command(update=..., goto=...) on a fresh thread: the input, and where it goes
        checkpoint = first_checkpoint(graph.schema, record.input["update"], None,
                                      record.input["goto"])
        _check_goto(graph, checkpoint.tasks[0].goto)
        saved = new_checkpoint(record, checkpoint, "input", None)
    elif base is None and record.has_resume:  # Command(resume=...) on a fresh thread
        saved = new_checkpoint(record, first_checkpoint(graph.schema, {}), "input", None)
    elif base is None:
        raise EmptyInputError("Received no input for __start__")
    elif latest is not None and (base.id != latest.id or (
            (replays_own(record) or (travels_in_place(record) and record.input is None))
            and base.source not in ("update", "fork"))):
        # an older checkpoint, or the latest named by its id (time travel): fork from it
        saved = new_checkpoint(record, fork_checkpoint(base.checkpoint), "fork", base.id)
        events.append(("values", graph.schema.output(base.checkpoint.values)))
        if record.has_resume:  # Command(resume=...): the answer goes with the fork
            edit, _ = await _resume(store, graph, record, saved)
    else:
        saved = base
        if record.input is not None:  # Command(update=..., goto=...): applied to the step
            _check_goto(graph, record.input["goto"])
            checkpoint = command_checkpoint(graph.schema, base.checkpoint,
                                            record.input["update"], record.input["goto"])
            saved = base.model_copy(update={"checkpoint": checkpoint})
        edit, events = await _resume(store, graph, record, saved, replays_own(record),
                                     travels_in_place(record))
    new = saved.id != (base.id if base else None)
    if new and record.records("checkpoints"):
        events.append(checkpoint_event(graph, record, saved))
    return FirstPosition(saved, new, edit, events)


def replays_own(record: RunRecord) -> bool:
    """Whether a subgraph's run replays the checkpoint its parent's replay names for it (its
    `checkpoint_map` entry) without answers: as LangGraph, its step runs again whole and asks
    its questions again, answered ones too (in place for an update's or a fork's checkpoint)."""
    namespace = str((record.config.get("configurable") or {}).get("checkpoint_ns") or "")
    return bool(namespace and record.from_checkpoint and not record.has_resume
                and checkpoint_map(record.config).get(namespace) == record.from_checkpoint)


def travels_in_place(record: RunRecord) -> bool:
    """Whether a root run travels in time (a `checkpoint_id`, no `Command(resume=...)`), which
    at its thread's latest checkpoint forks it, as LangGraph (an update's or a fork's is
    replayed in place): the tasks that stopped there ask their questions again."""
    configurable = record.config.get("configurable") or {}
    return bool(REPLAY in configurable and not record.has_resume
                and not configurable.get("checkpoint_ns"))


async def _resume(
    store: RunStore, graph: CompiledStateGraph, record: RunRecord, base: SavedCheckpoint,
    replays: bool = False, unanswered: bool = False,
) -> tuple[WritesEdit, list[tuple[Any, Any]]]:
    """What resuming `base` changes in its pending writes (failed and interrupted tasks run
    again, and interrupted ones get the resume values meant for them; with `replays`, every
    task runs again, and with it or `unanswered` none keeps its answers), and the events it
    starts with, as LangGraph's: the state, then the updates of tasks already done."""
    tasks = base.checkpoint.tasks
    outcomes = await store.outcomes(record.tag, base.id, [t.id for t in tasks])
    if replays:
        given = {t.id for t in tasks if t.node == START or t.update}
        again = tuple(tid for tid in outcomes if tid not in given)
        return WritesEdit(base.id, again, {tid: [] for tid in again}), [
            ("values", graph.schema.output(base.checkpoint.values))]
    events: list[tuple[Any, Any]] = [("values", graph.schema.output(base.checkpoint.values))]
    if record.records("checkpoints"):  # (the checkpoint it goes on from, as LangGraph tells)
        events.append(checkpoint_event(graph, record, base,
                                       {tid: o.interrupts for tid, o in outcomes.items()}))
    for task in tasks:
        done = outcomes.get(task.id)
        if done is not None and done.succeeded and task.node != START:
            shown = graph.schema.state_writes(done.writes)
            events.append(("updates", {task.node: shown or None,
                                       "__metadata__": {"cached": True}}))
    drop = tuple(tid for tid, o in outcomes.items() if not o.succeeded)
    if unanswered:
        return WritesEdit(base.id, drop, {tid: [] for tid in drop}), events
    pending = {entry[0]: tid for tid, o in outcomes.items() for entry in o.interrupts
               if entry[0] != BREAKPOINT[0]}
    targets: dict[str, Any] = {}
    if record.has_resume and pending:
        resume = record.resume
        if _is_resume_map(resume):  # {interrupt id: value}; ids of no pending interrupt
            answered: dict[str, dict[str, Any]] = {}
            for iid, value in resume.items():
                if iid in pending:
                    answered.setdefault(pending[iid], {})[iid] = value
            waits = Counter(pending.values())
            # a task stopped at several interrupts (a subgraph's) gets its part of the map
            targets = {tid: m if waits[tid] > 1 else next(iter(m.values()))
                       for tid, m in answered.items()}
        elif len(pending) > 1:  # (one task may wait on several: a subgraph's)
            raise ResumeError(
                "When there are multiple pending interrupts, you must specify the interrupt "
                f"id when resuming (pending: {sorted(pending)})."
            )
        else:
            targets = {next(iter(pending.values())): resume}
    elif record.has_resume and not _is_resume_map(record.resume):
        # nothing asked yet (the step's state was updated since): as LangGraph, the value
        # answers the first interrupt the step's tasks ask
        targets = {t.id: record.resume for t in tasks
                   if t.node != START and not t.update and t.id not in outcomes}
    values = {}
    for task_id, value in targets.items():
        earlier = await store.threads.resume_values(record.tag, base.id, task_id)
        # a resume value its interrupt refused (see `interrupt(response_schema=...)`) and any
        # after it are not kept: the answer now given takes its place
        asked = {entry[0] for entry in outcomes[task_id].interrupts} if (
            task_id in outcomes) else set()
        base_id = f"{record.tag}:{base.id}:{task_id}"
        kept = next((n for n in range(len(earlier)) if interrupt_id(base_id, n) in asked),
                    len(earlier))
        values[task_id] = [*earlier[:kept], value]
    return WritesEdit(base.id, drop, values), events


def _is_resume_map(resume: Any) -> bool:
    """Whether a resume value maps interrupt ids to values (as LangGraph tells: every key looks
    like an interrupt id) rather than being one value that happens to be a dict."""
    return isinstance(resume, dict) and bool(resume) and all(
        isinstance(k, str) and len(k) == 32 and all(c in "0123456789abcdef" for c in k)
        for k in resume
    )


async def _updated(
    store: RunStore, graph: CompiledStateGraph, record: RunRecord, base: SavedCheckpoint | None
) -> tuple[SavedCheckpoint, WritesEdit | None]:
    """The first checkpoint of an update run (one superstep of `bulk_update_state`): a
    transient step of one task per update, which the run folds into the updated checkpoint;
    or, for the special updates LangGraph knows, that checkpoint itself (the run ends there):
    values as the input (`__input__`), a copy (`__copy__`; the client applies the updates a
    copy's values may list as the next superstep), a stopped step's tasks dropped (None as
    END)."""
    updates = [(u[1], u[0]) for u in record.input]  # (as_node, values)
    parent = base.id if base else None
    special = [as_node for as_node, values in updates if as_node in (INPUT_NODE, COPY_NODE)
               or (as_node == END and values is None)]
    if special and len(updates) > 1:
        raise InvalidUpdateError(f"Cannot apply multiple updates with {special[0]!r}")
    as_node, values = updates[0]
    if as_node == INPUT_NODE:
        writes = graph.input_schema.input_writes(_root(graph, values))
        checkpoint = first_checkpoint(graph.schema, writes, base.checkpoint if base else None)
        return new_checkpoint(record, checkpoint, "input", parent), None
    if as_node == COPY_NODE:  # a sibling of the checkpoint: the same parent, one step on
        if base is None:
            raise InvalidUpdateError("Cannot copy a non-existent checkpoint")
        return new_checkpoint(record, fork_checkpoint(base.checkpoint), "fork", base.parent), None
    start = base.checkpoint if base else Checkpoint(-1, graph.schema.start_values(), ())
    outcomes = await store.outcomes(record.tag, base.id, [t.id for t in start.tasks]) if (
        base) else {}
    if as_node == END and values is None:
        return new_checkpoint(record, cleared_checkpoint(graph.spec, start, outcomes),
                              "update", parent), None
    steps = []
    for as_node, values in updates:
        as_node = as_node or _updating_node(start)
        if as_node not in graph.nodes and as_node != START:
            raise InvalidUpdateError(f"Node {as_node} does not exist")
        steps.append((as_node, _root(graph, values)))
    checkpoint = update_checkpoint(start, steps, graph.spec.deferred)
    # An update as a node the step was to run is that task's result (its first such update).
    recorded: dict[str, TaskOutcome] = {}
    for update in checkpoint.tasks:
        task = next((t for t in start.tasks if t.node == update.node
                     and t.id not in outcomes and t.id not in recorded), None)
        given = given_outcome(update).writes
        if task is not None and isinstance(given, dict):
            recorded[task.id] = TaskOutcome(task.id, task.node, writes=given)
    edit = WritesEdit(base.id, outcomes=recorded) if base and recorded else None
    return new_checkpoint(record, checkpoint, "update", parent, True), edit


def _root(graph: CompiledStateGraph, values: Any) -> Any:
    return {ROOT: values} if graph.schema.kind == "root" else values


def _check_goto(graph: CompiledStateGraph, nodes: Sequence[str]) -> None:
    for node in nodes:
        if node not in graph.nodes and node != END:
            raise InvalidUpdateError(f"Command(goto=...) names an unknown node {node!r}")


def _updating_node(checkpoint: Checkpoint) -> str:
    """The node `update_state` writes as when none is named: the one that wrote last."""
    if len(checkpoint.updated_by) == 1:
        return checkpoint.updated_by[0]
    if not checkpoint.updated_by and checkpoint.step < 0:
        return START
    raise InvalidUpdateError("Ambiguous update, specify as_node")
