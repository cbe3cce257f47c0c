"""The superstep algorithm as pure functions: no Redis, no I/O, no user node code.

A run is a sequence of checkpoints. Checkpoint N holds the state and the tasks of superstep N.
When every task of a step has an outcome, `next_checkpoint` folds their writes through the
reducers in a deterministic order and works out which tasks the next step has. The
orchestrator calls it; the worker calls `apply_writes` to let a conditional edge see its own
node's writes. Both get the same answer from the same inputs, which is what makes re-running
a step (after a crash, on another orchestrator) safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from arqgraph.constants import END, START
from arqgraph.core.schema import StateSchema
from arqgraph.errors import ErrorInfo, InvalidUpdateError
from arqgraph.types import Command, Send, overwrite_of


@dataclass(frozen=True)
class GraphSpec:
    """The structure of a compiled graph, which is all the algorithm needs to know of it."""

    schema: StateSchema
    nodes: frozenset[str]
    edges: Mapping[str, tuple[str, ...]]
    joins: tuple[tuple[tuple[str, ...], str], ...] = ()
    order: tuple[str, ...] = ()  # the order nodes were added in: how LangGraph lists tasks
    deferred: frozenset[str] = frozenset()  # nodes that run once nothing else is left to run


@dataclass(frozen=True)
class Task:
    """One node to run in one superstep. `send_index` is set for tasks created by a Send;
    `update` for the task of `update_state`, whose writes are given (`arg`), not computed."""

    id: str
    node: str
    send_index: int | None = None
    arg: Any = None
    update: bool = False
    goto: tuple[str, ...] = ()  # the input's: nodes a `Command(goto=...)` input runs next
    # a Send's own timeout policy, as (run timeout, idle timeout, refresh_on)
    timeout: tuple[float | None, float | None, str] | None = None

    @property
    def sort_key(self) -> tuple[int, str, int]:
        # LangGraph's order: edge-triggered tasks by node name, then Sends in send order.
        if self.send_index is None:
            return (0, self.node, 0)
        return (1, "", self.send_index)


@dataclass(frozen=True)
class Repeated:
    """A key one task wrote several times (a node returning a list of Commands), its values in
    the order written: each goes through the key's reducer in turn."""

    values: tuple[Any, ...]


def shown_writes(writes: Mapping[str, Any] | None) -> dict[str, Any]:
    """A task's writes as its results show them (the "tasks" stream, a snapshot's tasks): a
    key written several times by one task as `{"$writes": [...]}`, as LangGraph's."""
    return {k: {"$writes": list(v.values)} if isinstance(v, Repeated) else v
            for k, v in (writes or {}).items()}


@dataclass(frozen=True)
class TaskOutcome:
    """What a finished task contributes: its writes and where it sends control next; or the
    error it failed with; or the interrupts (id, value) it stopped at, waiting for a human."""

    task_id: str
    node: str
    writes: Mapping[str, Any] | None = None
    goto: tuple[str, ...] = ()
    sends: tuple[Send, ...] = ()
    error: ErrorInfo | None = None
    interrupts: tuple[tuple[Any, ...], ...] = ()  # (id, value[, response schema]) each
    node_error: ErrorInfo | None = None  # the node failed and its error handler took over
    posted_by: str = ""  # the run that posted it, told only by runs with durability="exit"

    @property
    def handled(self) -> bool:
        """The node failed and its error handler gave these writes and goto instead."""
        return self.node_error is not None and self.error is None

    @property
    def succeeded(self) -> bool:
        return self.error is None and not self.interrupts


@dataclass(frozen=True)
class Checkpoint:
    """The state at the start of superstep `step` and the tasks that superstep runs.

    `seen` remembers, for each join target, which of its sources have finished so far;
    `wrote` whether any step so far wrote a state key, `step_wrote` whether the last one did,
    `updated_by` which nodes wrote in the last step (`update_state` without `as_node` uses it);
    `waiting` the deferred nodes triggered so far, which run once no other task is left.
    """

    step: int
    values: Mapping[str, Any]
    tasks: tuple[Task, ...]
    seen: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    wrote: bool = False
    step_wrote: bool = False
    updated_by: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()

    def task(self, task_id: str) -> Task | None:
        return self._tasks_by_id.get(task_id)

    @cached_property
    def _tasks_by_id(self) -> dict[str, Task]:  # each task of a 10,000-task step looks itself up
        return {t.id: t for t in self.tasks}


def first_checkpoint(
    schema: StateSchema, input_writes: Mapping[str, Any], base: Checkpoint | None = None,
    goto: Sequence[str] = (),
) -> Checkpoint:
    """The checkpoint of a run's input: a single `__start__` task whose writes are the input
    (and that also runs the nodes `goto` names, for a `Command(goto=...)` input).

    On a thread that has a checkpoint already (`base`), the input lands on its state, one step
    later; otherwise it is step -1 of a fresh state.
    """
    step = -1 if base is None else base.step + 1
    task = Task(id=f"{step}:{START}", node=START, arg=dict(input_writes), goto=tuple(goto))
    if base is None:
        return Checkpoint(step=step, values=schema.start_values(), tasks=(task,))
    return replace(base, step=step, tasks=(task,), step_wrote=False, updated_by=())


def entry_checkpoint(schema: StateSchema, input_writes: Mapping[str, Any], node: str,
                     base: Checkpoint | None = None) -> Checkpoint:
    """The checkpoint of an entrypoint's input, as LangGraph's: the input already written
    (an entrypoint's input is its channels' own, not a `__start__` task's) and the entrypoint
    due, at step -1 of a fresh state or one step after the thread's `base`."""
    step = -1 if base is None else base.step + 1
    start = schema.start_values() if base is None else base.values
    values = apply_writes(schema, start, [TaskOutcome("", START, writes=dict(input_writes))])
    task = Task(id=f"{step}:{node}", node=node)
    if base is None:
        return Checkpoint(step=step, values=values, tasks=(task,))
    return replace(base, step=step, values=values, tasks=(task,), step_wrote=False,
                   updated_by=())


def update_checkpoint(base: Checkpoint, updates: Sequence[tuple[str, Any]],
                      deferred: frozenset[str] = frozenset()) -> Checkpoint:
    """A step of one task per update (as_node, values), each writing `values` as if node
    `as_node` had returned them: a superstep of `update_state` / `bulk_update_state`. Its next
    checkpoint is the updated state, with the tasks that would follow those nodes. A
    `deferred` node the stopped step was to run still waits for the end, as LangGraph's."""
    tasks = tuple(
        Task(id=f"{base.step}:update:{as_node}" + (f":{i}" if i else ""), node=as_node,
             arg=values, update=True)
        for i, (as_node, values) in enumerate(updates)
    )
    waiting = set(base.waiting) | {t.node for t in base.tasks
                                   if t.node in deferred and t.send_index is None}
    return replace(base, tasks=tasks, waiting=tuple(sorted(waiting)))


def cleared_checkpoint(
    spec: GraphSpec, base: Checkpoint, outcomes: Mapping[str, TaskOutcome]
) -> Checkpoint:
    """The next checkpoint of a stopped step whose tasks are dropped (`update_state(None,
    as_node=END)`): the writes of the tasks that finished applied, nothing left to run."""
    values, _ = pending_view(spec, base, outcomes)
    return replace(base, step=base.step + 1, values=values, tasks=(), step_wrote=False,
                   updated_by=())


def command_checkpoint(
    schema: StateSchema, base: Checkpoint, update: Mapping[str, Any], goto: Sequence[str]
) -> Checkpoint:
    """A stopped step that a `Command(update=..., goto=...)` resumes: the update applied to
    its state before its tasks run again, the nodes `goto` names added to them (LangGraph's
    writes of no task, applied before the step's tasks)."""
    values = apply_writes(schema, base.values, [TaskOutcome("", START, writes=update)])
    have = {t.node for t in base.tasks if t.send_index is None}
    added = [Task(id=f"{base.step}:{node}", node=node) for node in goto
             if node not in have and node != END]
    return replace(base, values=values, tasks=(*base.tasks, *added))


def fork_checkpoint(base: Checkpoint) -> Checkpoint:
    """An older checkpoint copied forward one step, to run its tasks again on a new branch."""
    step = base.step + 1
    tasks = tuple(replace(t, id=f"{step}:{t.id.partition(':')[2]}") for t in base.tasks)
    return replace(base, step=step, tasks=tasks)


def given_outcome(task: Task) -> TaskOutcome:
    """The outcome of a `__start__` or update task whose node has no conditional edges (an
    update may be a Command: its update written, its goto and Sends followed)."""
    if isinstance(task.arg, Command):
        targets = task.arg.goto_targets()
        return TaskOutcome(
            task_id=task.id, node=task.node, writes=dict(task.arg.update_items()),
            goto=tuple(t for t in targets if isinstance(t, str)),
            sends=tuple(t for t in targets if isinstance(t, Send)),
        )
    return TaskOutcome(task_id=task.id, node=task.node, writes=task.arg, goto=task.goto)


def pending_view(
    spec: GraphSpec, checkpoint: Checkpoint, outcomes: Mapping[str, TaskOutcome]
) -> tuple[dict[str, Any], tuple[Task, ...]]:
    """A stopped step as `get_state` shows it: the writes of the tasks that finished applied,
    and the tasks still to run (failed or interrupted ones)."""
    done = [o for t in ordered(checkpoint.tasks) if (o := outcomes.get(t.id)) and o.succeeded]
    values = apply_writes(spec.schema, checkpoint.values, done)
    finished = {o.task_id for o in done}
    return values, tuple(t for t in checkpoint.tasks if t.id not in finished)


def apply_writes(
    schema: StateSchema, values: Mapping[str, Any], outcomes: Sequence[TaskOutcome]
) -> dict[str, Any]:
    """Fold the outcomes' writes into `values` through each key's reducer, in the given order.

    A key without a reducer takes at most one value per step; keys not in the schema are dropped.
    """
    grouped: dict[str, list[Any]] = {}
    for outcome in outcomes:
        for key, value in (outcome.writes or {}).items():
            if key in schema.channels:
                grouped.setdefault(key, []).extend(
                    value.values if isinstance(value, Repeated) else (value,))
    new = dict(values)
    for key, written in grouped.items():
        reducer = schema.channels[key].reducer
        if reducer is None:
            if len(written) > 1:
                raise InvalidUpdateError(
                    f"At key '{key}': Can receive only one value per step. "
                    "Use an Annotated key to handle multiple values."
                )
            new[key] = written[0]
            continue
        overwritten = False
        for value in written:
            is_overwrite, replacement = overwrite_of(value)
            if is_overwrite:
                if overwritten:
                    raise InvalidUpdateError(
                        "Can receive only one Overwrite value per super-step."
                    )
                new[key], overwritten = replacement, True
            elif not overwritten:  # (values after an overwrite in the same step are dropped)
                new[key] = reducer(new[key], value) if key in new else value
    return new


def ordered(tasks: Iterable[Task]) -> list[Task]:
    return sorted(tasks, key=lambda t: t.sort_key)


def next_checkpoint(
    spec: GraphSpec, checkpoint: Checkpoint, outcomes: Mapping[str, TaskOutcome]
) -> Checkpoint:
    """Apply a finished step's writes and prepare the next step's tasks.

    Every task of `checkpoint` must have a successful outcome in `outcomes` (keyed by task id).
    """
    tasks = ordered(checkpoint.tasks)
    done = [outcomes[t.id] for t in tasks]
    values = apply_writes(spec.schema, checkpoint.values, done)
    step_wrote = any(k in spec.schema.channels for o in done for k in (o.writes or {}))

    triggered: set[str] = set()
    sends: list[Send] = []
    seen = {target: set(sources) for target, sources in checkpoint.seen.items()}
    for task in tasks:  # a join's target that ran consumed its sources (LangGraph's barrier)
        if task.send_index is None and task.node in seen and not task.update:
            seen[task.node] = set()
    for task, outcome in zip(tasks, done, strict=True):
        if not outcome.handled:  # an error handler's task goes only where the handler says
            triggered.update(spec.edges.get(task.node, ()))
            for sources, target in spec.joins:
                if task.node in sources:
                    seen.setdefault(target, set()).add(task.node)
        triggered.update(outcome.goto)
        sends.extend(outcome.sends)
    for sources, target in spec.joins:  # (kept until the target runs: see above)
        if seen.get(target, set()) >= set(sources):
            triggered.add(target)

    step = checkpoint.step + 1
    # A deferred node waits, however often triggered, until nothing else is left to run.
    waiting = set(checkpoint.waiting) | (triggered & spec.deferred)
    triggered -= spec.deferred
    next_tasks = [
        Task(id=f"{step}:send:{i}:{send.node}", node=send.node, send_index=i, arg=send.arg,
             timeout=None if send.timeout is None else (
                 send.timeout.run_timeout, send.timeout.idle_timeout,  # type: ignore[arg-type]
                 send.timeout.refresh_on))
        for i, send in enumerate(sends)
        if send.node != END
    ]
    if not next_tasks and not triggered - {END}:
        triggered, waiting = waiting, set()
    pulled = listed(spec, triggered - {END})
    next_tasks += [Task(id=f"{step}:{node}", node=node) for node in pulled]
    return Checkpoint(
        step=step,
        values=values,
        tasks=tuple(next_tasks),
        seen={t: tuple(sorted(s)) for t, s in seen.items() if s},
        wrote=checkpoint.wrote or step_wrote,
        step_wrote=step_wrote,
        updated_by=tuple(sorted({o.node for o in done if o.writes})),
        waiting=tuple(sorted(waiting)),
    )


def listed(spec: GraphSpec, nodes: set[str]) -> list[str]:
    """Nodes as LangGraph lists a step's tasks (Sends first, then nodes in the order they were
    added); their writes are applied in `Task.sort_key` order whatever the listing. A step of
    one node (a chain's) needs no ranking of the graph's nodes."""
    if len(nodes) < 2:
        return list(nodes)
    rank = {node: i for i, node in enumerate(spec.order)}
    return sorted(nodes, key=lambda node: (rank.get(node, len(rank)), node))


def exceeds_recursion_limit(checkpoint: Checkpoint, recursion_limit: int, first_step: int = -1) -> bool:
    """LangGraph stops a run before its superstep N once N reaches recursion_limit, tasks or not
    (steps are counted from the run's first step: a thread's later runs get the same budget)."""
    return checkpoint.step - (first_step + 1) >= recursion_limit
