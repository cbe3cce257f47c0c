"""Messages: what arqgraph writes in Redis, as msgpack, validated with pydantic when read
(see `arqgraph.protocol`)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import pydantic

from arqgraph.constants import START
from arqgraph.core import codec
from arqgraph.core.pregel import Checkpoint, Task, TaskOutcome
from arqgraph.errors import (
    CorruptDataError,
    ErrorInfo,
    SerializationError,
    UpdateTooLargeError,
)
from arqgraph.protocol import blobs as large
from arqgraph.protocol.errors import ErrorModel, decode_error, encode_error
from arqgraph.protocol.keys import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_STALE,
    MAX_UPDATE_BYTES,
    CheckpointSource,
    RunKind,
    RunStatus,
    tag_of,
)


class TaskJob(pydantic.BaseModel):
    """The keyword arguments of an arq job: which task of which run to execute."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    run_id: str
    checkpoint_id: str
    step: int
    task_id: str
    graph: str
    fingerprint: str
    trace: str = ""  # W3C traceparent of its superstep's span (arqgraph.observe.traces)

    @pydantic.field_validator("run_id")
    @classmethod
    def _is_run_id(cls, value: str) -> str:
        tag_of(value)
        return value


class InboxNote(pydantic.BaseModel):
    kind: Literal["submit", "task_done", "cancel", "drain", "wake"]
    run_id: str


class GraphInfo(pydantic.BaseModel):
    """What the orchestrators serving a graph register, so producers can check the name."""

    name: str
    fingerprint: str
    queue: str
    entrypoint: bool = False  # a Functional API entrypoint: takes any input, returns a value
    root: bool = False  # its state is one value (`StateGraph(list[str])`): the `__root__` key
    # its nodes, edges and Mermaid text (`graph.drawing.drawing_data`), for the dashboard
    drawing: dict[str, Any] = {}


class SavedCheckpoint(pydantic.BaseModel):
    """A checkpoint as a thread keeps it: the superstep state plus where it came from.

    `view` is what `get_state` shows when the step stopped part-way (failed or interrupted):
    the values with the finished tasks' writes applied, and the ids of the tasks left to run.
    A transient checkpoint (the one-task step of `update_state`) is not in the history.
    """

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)

    id: str
    parent: str | None = None
    source: CheckpointSource
    created_at: str
    run_id: str = ""
    checkpoint: Checkpoint
    view_values: dict[str, Any] | None = None
    view_next: list[str] | None = None
    transient: bool = False
    # a subgraph's: its parents' checkpoints when it was saved, by namespace (LangGraph's
    # metadata "parents"), which a config of it names to replay the whole stack
    parents: dict[str, str] = {}


# A mode a run records no events in: its producer reads only its end (an embedded `invoke`),
# so the values and updates events of its steps, which no one would read, are not written.
END_ONLY = "end-only"


class RunRecord(pydantic.BaseModel):
    """A run as read from its hash, with its current checkpoint.

    `kind` says how it starts: from an input (`input`), by resuming its thread where it stopped
    (`resume`, with `resume` values for interrupts and `checkpoint_id` for a fork of an older
    checkpoint), or as a superstep of `update_state` / `bulk_update_state` (`update`, its
    `input` the list of updates [values, as_node]). `first_checkpoint` is the checkpoint the
    run started from.
    """

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)

    run_id: str
    graph: str
    status: RunStatus
    version: int
    thread_id: str
    keep: bool = False
    kind: RunKind = "input"
    fingerprint: str = ""
    checkpoint_id: str = ""
    first_checkpoint: str = ""
    first_step: int = -1
    saved: SavedCheckpoint | None = None
    input: Any = None
    resume: Any = None
    has_resume: bool = False
    from_checkpoint: str = ""
    config: dict[str, Any] = {}
    context: Any = None
    error: ErrorInfo | None = None
    cancel_requested: bool = False
    drain: str = ""  # why it was asked to stop after its running step (`RunControl`)
    waiter: str = ""  # the client that awaits the run's end (see `ends_key`)
    unreadable: str = ""  # why a value of the run (input, context, state) cannot be read here
    garbled: bool = False  # its record was garbled, and set aside (see `storage.dead_letters`)
    retention: int | None = None  # seconds its keys live once it ends (its orchestrator's)
    history_depth: int = 0  # checkpoints its thread keeps (its orchestrator's; 0: every one)
    modes: tuple[str, ...] = ()  # the stream modes it records besides values/updates/custom
    created: float | None = None  # when it was submitted (Unix time)
    finished: float | None = None  # when it ended (None before, or if an older version ended it)
    trace: str = ""  # W3C traceparent of its trace's root span (arqgraph.observe.traces)
    step_trace: str = ""  # and of its current superstep's span, which the step's jobs carry

    def records(self, mode: str) -> bool:
        """Whether the run records the events of stream mode `mode` ("tasks", "checkpoints"),
        which cost a write each: only when its producer asked for them (or for "debug"), and
        checkpoints only of a thread that keeps them (as LangGraph: none without a saver).
        Values and updates are recorded unless its producer reads only its end."""
        if mode in ("values", "updates"):
            return END_ONLY not in self.modes
        if mode in ("messages", "tools"):
            return mode in self.modes
        return (mode in self.modes or "debug" in self.modes) and (
            self.keep or mode != "checkpoints")

    @property
    def tag(self) -> str:
        return tag_of(self.run_id)

    @property
    def checkpoint(self) -> Checkpoint | None:
        return self.saved.checkpoint if self.saved else None


def encode_note(note: InboxNote) -> bytes:
    return codec.packb(note.model_dump())


@functools.lru_cache(maxsize=1024)
def task_done_note(run_id: str) -> bytes:
    """The note each post of a task's outcome carries for its graph's inbox: made once a run
    (a run posts at every step), not once a post."""
    return encode_note(InboxNote(kind="task_done", run_id=run_id))


def decode_note(data: bytes) -> InboxNote:
    return InboxNote.model_validate(codec.unpackb(data))


class Heartbeat(pydantic.BaseModel):
    """A live orchestrator's or worker's record (`WORKERS_KEY`, `ORCHESTRATORS_KEY`): what
    `arqgraph workers`, `graphs`, `health` and `up` show and wait for. `seen` is the Unix time
    of the beat, `every` how many seconds at most until the next one: an idle process beats
    less often. A beat `stale_after` seconds old is a dead process's."""

    id: str
    host: str
    pid: int
    queues: list[str]
    graphs: list[str]
    concurrency: int = 0
    running: int = 0
    jobs: dict[str, float] = {}  # a worker's running jobs, by job id: since when (Unix time)
    started: float
    seen: float
    every: float = HEARTBEAT_INTERVAL

    @property
    def stale_after(self) -> float:
        return self.every + HEARTBEAT_STALE - HEARTBEAT_INTERVAL


def encode_heartbeat(beat: Heartbeat) -> bytes:
    return codec.packb(beat.model_dump())


def decode_heartbeat(data: bytes) -> Heartbeat:
    return Heartbeat.model_validate(codec.unpackb(data))


def encode_info(info: GraphInfo) -> bytes:
    return codec.packb(info.model_dump())


def decode_info(data: bytes) -> GraphInfo:
    return GraphInfo.model_validate(codec.unpackb(data))


class _CheckpointModel(pydantic.BaseModel):
    step: int
    values: dict[str, Any]
    tasks: list[Task]  # (validated straight into the dataclass: half the time of a model each)
    seen: dict[str, list[str]] = {}
    wrote: bool = False
    step_wrote: bool = False
    updated_by: list[str] = []
    waiting: list[str] = []


class _OutcomeModel(pydantic.BaseModel):
    task_id: str
    node: str
    writes: dict[Any, Any] | None = None
    goto: list[str] = []
    sends: list[tuple[str, Any] | tuple[str, Any, Any]] = []  # (node, arg[, timeout])
    error: ErrorModel | None = None
    interrupts: list[tuple[str, Any] | tuple[str, Any, Any]] = []  # (id, value[, schema])
    node_error: ErrorModel | None = None
    run: str = ""  # the run that posted it, if it keeps only its last step (durability exit)


def encode_checkpoint(cp: Checkpoint, blobs: dict[str, bytes] | None = None) -> bytes:
    """The checkpoint's bytes; with `blobs`, its large values are kept apart there (see
    `arqgraph.protocol.blobs`) and the bytes refer to them."""
    values = dict(cp.values) if blobs is None else large.split(cp.values, blobs)

    def arg(t: Task) -> Any:  # (an input's, an update's writes, a Send's argument: maybe large)
        if blobs is None:
            return t.arg
        if t.send_index is not None:
            return large.split_arg(t.arg, blobs)
        given = (t.update or t.node == START) and isinstance(t.arg, dict)
        return large.split(t.arg, blobs, "input") if given else t.arg

    return codec.pack_values(
        {
            "step": cp.step,
            "values": values,
            "tasks": [
                {"id": t.id, "node": t.node, "send_index": t.send_index, "arg": arg(t),
                 "update": t.update, **({"goto": list(t.goto)} if t.goto else {}),
                 **({"timeout": list(t.timeout)} if t.timeout else {})}
                for t in cp.tasks
            ],
            "seen": {k: list(v) for k, v in cp.seen.items()},
            "wrote": cp.wrote,
            "step_wrote": cp.step_wrote,
            "updated_by": list(cp.updated_by),
            "waiting": list(cp.waiting),
        },
        where="checkpoint",
    )


def decode_checkpoint(data: bytes) -> Checkpoint:
    m = _CheckpointModel.model_validate(codec.unpackb(data))
    return Checkpoint(
        step=m.step,
        values=m.values,
        tasks=tuple(m.tasks),
        seen={k: tuple(v) for k, v in m.seen.items()},
        wrote=m.wrote,
        step_wrote=m.step_wrote,
        updated_by=tuple(m.updated_by),
        waiting=tuple(m.waiting),
    )


def encode_saved(saved: SavedCheckpoint, blobs: dict[str, bytes] | None = None) -> bytes:
    """The saved checkpoint's bytes; with `blobs`, its large values (and its view's) are kept
    apart there, as `encode_checkpoint` keeps them."""
    view = saved.view_values
    if blobs is not None and view is not None:
        view = large.split(view, blobs, "view of state")
    return codec.pack_values(
        {
            "id": saved.id,
            "parent": saved.parent,
            "source": saved.source,
            "created_at": saved.created_at,
            "run_id": saved.run_id,
            "checkpoint": encode_checkpoint(saved.checkpoint, blobs),
            "view_values": view,
            "view_next": saved.view_next,
            "transient": saved.transient,
            "parents": saved.parents,
        },
        where="checkpoint",
    )


def decode_saved(data: bytes) -> SavedCheckpoint:
    """A saved checkpoint as its bytes hold it: its large values are `BlobRef`s until
    `with_blobs` puts them in (records of older versions hold none)."""
    fields = codec.unpackb(data)
    if not isinstance(fields, dict) or not isinstance(fields.get("checkpoint"), bytes):
        raise ValueError("not a saved checkpoint")
    return SavedCheckpoint.model_validate(
        {**fields, "checkpoint": decode_checkpoint(fields["checkpoint"])}
    )


def saved_refs(saved: SavedCheckpoint) -> set[str]:
    """The ids of the blobs a decoded checkpoint refers to (see `with_blobs`)."""
    cp = saved.checkpoint
    return large.all_refs([cp.values, saved.view_values]).union(
        *(large.arg_refs(t.arg) for t in cp.tasks))


def with_blobs(saved: SavedCheckpoint, blobs: Mapping[str, bytes | None]) -> SavedCheckpoint:
    """The checkpoint with the values it refers to put back (`blobs`: id -> packed value)."""
    if not saved_refs(saved):
        return saved
    cp = saved.checkpoint
    tasks = tuple(replace(t, arg=large.resolve_arg(t.arg, blobs)) for t in cp.tasks)
    checkpoint = replace(cp, values=large.resolve(cp.values, blobs), tasks=tasks)
    view = saved.view_values
    return saved.model_copy(update={
        "checkpoint": checkpoint,
        "view_values": large.resolve(view, blobs) if view is not None else None})


def encode_outcome(outcome: TaskOutcome, max_bytes: int = MAX_UPDATE_BYTES,
                   ran: tuple[str, float, float] | None = None,
                   blobs: dict[str, bytes] | None = None) -> bytes:
    """Encode a task outcome, with `ran` (the worker, when it began, seconds it took) if told,
    for the dashboard's timeline; an unserializable write raises an error naming node and key,
    an outcome over `max_bytes` an UpdateTooLargeError naming node and largest keys. With
    `blobs`, its large writes and Send arguments are kept apart there (`outcome_with_blobs`
    puts them back), as checkpoints keep theirs: kept once, whoever refers to them."""
    writes = dict(outcome.writes) if outcome.writes is not None else None
    sends = [codec.send_fields(s) for s in outcome.sends]  # (a list: no extension type to
    # decode for each of a 10,000-task fan-out's Sends)

    def packed() -> bytes:
        return codec.packb({
            **({"ran": list(ran)} if ran else {}),
            "task_id": outcome.task_id,
            "node": outcome.node,
            "writes": writes,
            "goto": list(outcome.goto),
            "sends": sends,
            "error": encode_error(outcome.error) if outcome.error else None,
            "interrupts": [list(i) for i in outcome.interrupts],
            "node_error": encode_error(outcome.node_error) if outcome.node_error else None,
            **({"run": outcome.posted_by} if outcome.posted_by else {}),
        })

    try:
        data = packed()
    except SerializationError:  # packed once: only a failure looks for the key to name
        if outcome.writes:
            codec.pack_values(outcome.writes, where=f"update of node {outcome.node!r},")
        raise
    if len(data) > max_bytes:
        raise UpdateTooLargeError(
            f"the update of node {outcome.node!r} is {len(data):,} bytes, over the limit of "
            f"{max_bytes:,} (largest: {describe_sizes(outcome)}); keep large data outside the "
            "state (object storage, a database) and put a reference in it"
        )
    if blobs is None or len(data) < large.BLOB_MIN:
        return data
    writes = large.split(writes, blobs, f"update of node {outcome.node!r},") if writes else writes
    sends = [[s[0], large.split_arg(s[1], blobs), *s[2:]] for s in sends]
    return packed()


def describe_sizes(outcome: TaskOutcome) -> str:
    """The outcome's largest keys with their encoded sizes, for error messages."""
    sizes = sorted(
        ((len(codec.packb(v)), str(k)) for k, v in (outcome.writes or {}).items()), reverse=True
    )
    if outcome.sends:
        sizes.append((len(codec.packb([s.arg for s in outcome.sends])), "Send arguments"))
        sizes.sort(reverse=True)
    return ", ".join(f"key {k!r} {n:,} bytes" for n, k in sizes[:3]) or "no keys"


def outcome_ran(data: bytes) -> tuple[str, float, float] | None:
    """Who ran a task and when, as its outcome tells (see `encode_outcome`); None if untold."""
    ran = codec.unpackb(data).get("ran")
    return (str(ran[0]), float(ran[1]), float(ran[2])) if ran else None


def decode_outcome(data: bytes) -> TaskOutcome:
    m = _OutcomeModel.model_validate(codec.unpackb(data))
    return TaskOutcome(  # (the orchestrator decodes a 10,000-task step's at once: no needless work)
        m.task_id,
        m.node,
        m.writes,
        tuple(m.goto) if m.goto else (),
        tuple(codec.sent(*s) for s in m.sends) if m.sends else (),
        decode_error(m.error.model_dump()) if m.error else None,
        tuple(m.interrupts) if m.interrupts else (),
        decode_error(m.node_error.model_dump()) if m.node_error else None,
        m.run,
    )


def decode_run(
    run_id: str, fields: Mapping[bytes, bytes], saved: bytes | SavedCheckpoint | None
) -> RunRecord:
    """Read a run hash (and its current checkpoint). Values stored with `codec` are decoded;
    plain ones are UTF-8. A value that cannot be rebuilt here is named in `unreadable` (the run
    fails with it); a garbled record raises CorruptDataError naming the field."""
    try:
        return _decode_run(run_id, fields, saved)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CorruptDataError(f"the record of run {run_id} is garbled: {exc!r}") from None


def _decode_run(
    run_id: str, fields: Mapping[bytes, bytes], saved: bytes | SavedCheckpoint | None
) -> RunRecord:
    f = {k.decode(): v for k, v in fields.items()}

    def text(name: str) -> str:
        return f[name].decode() if name in f else ""

    unreadable: list[str] = [text("garbled")] if f.get("garbled") else []

    def packed(name: str) -> Any:
        try:
            return codec.unpackb(f[name]) if f.get(name) else None
        except SerializationError as exc:  # (the run is failed with it, not read forever)
            unreadable.append(f"its {name}: {exc}")
            return None

    checkpoint: SavedCheckpoint | None = None
    try:
        checkpoint = decode_saved(saved) if isinstance(saved, bytes) else saved
    except Exception as exc:  # bad bytes, bad msgpack, wrong types: the run fails with it
        unreadable.append(f"its checkpoint: {exc}")
    return RunRecord(
        run_id=run_id,
        graph=text("graph"),
        status=text("status"),  # type: ignore[arg-type]  # validated by pydantic
        version=int(f["version"]),
        thread_id=text("thread_id"),
        keep=f.get("keep") == b"1",
        kind=text("kind") or "input",  # type: ignore[arg-type]
        fingerprint=text("fingerprint"),
        checkpoint_id=text("checkpoint_id"),
        first_checkpoint=text("first_checkpoint"),
        first_step=int(text("first_step") or -1),
        saved=checkpoint,
        input=packed("input"),
        resume=packed("resume"),
        has_resume="resume" in f,
        from_checkpoint=text("from_checkpoint"),
        config=packed("config") or {},
        context=packed("context"),
        error=decode_error(packed("error")) if f.get("error") else None,
        cancel_requested=f.get("cancel") == b"1",
        drain=text("drain"),
        waiter=text("waiter"),
        retention=int(text("retention")) if f.get("retention") else None,
        history_depth=int(text("history_depth") or 0),
        modes=tuple(filter(None, text("modes").split(","))),
        created=float(text("created")) if f.get("created") else None,
        finished=float(text("finished")) if f.get("finished") else None,
        trace=text("trace"),
        step_trace=text("step_trace"),
        unreadable="; ".join(unreadable),
        garbled=bool(f.get("garbled")),
    )


def encode_resume(values: Sequence[Any]) -> bytes:
    """The values given so far to resume a task's interrupts, in order (its `resume:<task>`
    field of the step's writes, returned with the task's claim)."""
    return codec.pack_values({"resume": list(values)}, where="resume")


def decode_resume(data: bytes | None) -> tuple[Any, ...]:
    return tuple(codec.unpackb(data)["resume"]) if data else ()
