"""The wire protocol: every Redis key arqgraph uses and every message it writes there.

Keys of one run share the hash tag `{run_id}` so that a run's multi-key operations (the Lua
scripts below) also work on a Redis Cluster. Messages are msgpack (see `shared.codec`) and are
validated with pydantic when read, so a garbage payload fails with a clear error, never a crash.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from arq.constants import in_progress_key_prefix

from shared import codec
from shared.errors import ErrorInfo, UpdateTooLargeError
from shared.pregel import Checkpoint, Task, TaskOutcome
from shared.types import Send

PREFIX = "arqgraph"
DEFAULT_QUEUE = f"{PREFIX}:queue"
GRAPHS_KEY = f"{PREFIX}:graphs"
TASK_FUNCTION = "arqgraph.run_task"
MAX_UPDATE_BYTES = 16 * 1024 * 1024

RunStatus = Literal["pending", "running", "done", "failed", "cancelled", "interrupted"]
FINAL_STATUSES = ("done", "failed", "cancelled", "interrupted")
RunKind = Literal["input", "resume", "update"]
CheckpointSource = Literal["input", "loop", "update", "fork"]
EventMode = Literal["values", "updates", "custom", "end"]


# -- keys ----------------------------------------------------------------------------------
#
# Everything of one thread (its checkpoints, their pending writes, its runs and their events)
# shares the hash tag of the thread, so that the scripts below touch one hash slot. A run id
# starts with its thread's tag. A run submitted without a thread_id gets a thread of its own.


def thread_tag(thread_id: str) -> str:
    """The hash tag of a thread: a digest, so that any thread id (braces included) is safe."""
    return hashlib.sha1(thread_id.encode()).hexdigest()[:20]


def new_run_id(thread_id: str) -> str:
    return f"{thread_tag(thread_id)}.{uuid.uuid4().hex}"


def tag_of(run_id: str) -> str:
    tag, dot, _ = run_id.partition(".")
    if not dot or not tag:
        raise ValueError(f"{run_id!r} is not an arqgraph run id")
    return tag


def run_key(run_id: str) -> str:
    """Hash: the run's record (graph, status, version, checkpoint id, input, config, error)."""
    return f"{PREFIX}:{{{tag_of(run_id)}}}:run:{run_id}"


def events_key(run_id: str) -> str:
    """Stream: the run's events (values, updates, custom, end) for producers to read."""
    return f"{PREFIX}:{{{tag_of(run_id)}}}:events:{run_id}"


def thread_key(tag: str) -> str:
    """Hash: the thread's id, its latest checkpoint id (`latest`), the run it is busy with
    (`run`), and whether it lives until deleted (`keep`)."""
    return f"{PREFIX}:{{{tag}}}:thread"


def checkpoints_key(tag: str) -> str:
    """Hash: checkpoint id -> saved checkpoint (see `SavedCheckpoint`)."""
    return f"{PREFIX}:{{{tag}}}:checkpoints"


def history_key(tag: str) -> str:
    """List: the thread's checkpoint ids, newest first."""
    return f"{PREFIX}:{{{tag}}}:history"


def writes_key(tag: str, checkpoint_id: str) -> str:
    """Hash: task id -> outcome of that checkpoint's step (the first posted wins), and
    `resume:<task id>` -> the values its interrupts resume with. Kept with the checkpoint: a
    resumed run re-runs only the tasks without a successful outcome, setting the failed or
    interrupted outcome aside as `prior:<task id>:<n>` (counted by `priors:<task id>`)."""
    return f"{PREFIX}:{{{tag}}}:writes:{checkpoint_id}"


def claims_key(tag: str, checkpoint_id: str) -> str:
    """Hash: per task of a checkpoint's step, the attempt that owns it now (`<task>`), its
    starts that never ended (`<task>:lost`) and its failed tries (`<task>:failures`). The
    attempt fences stale workers."""
    return f"{PREFIX}:{{{tag}}}:claims:{checkpoint_id}"


def inbox_key(graph: str) -> str:
    """List: notifications (run submitted, task done, cancel) for the graph's orchestrators."""
    return f"{PREFIX}:inbox:{graph}"


def active_key(graph: str) -> str:
    """Set: ids of the graph's runs that have not finished; swept in case a notice was lost."""
    return f"{PREFIX}:active:{graph}"


CANCEL_CHANNEL = f"{PREFIX}:cancelled"
"""Pub/sub channel: ids of cancelled runs, so workers cancel their running nodes at once."""


def wake_key(queue: str) -> str:
    """List: a token per enqueued job, so idle workers wake at once instead of polling."""
    return f"{queue}:wake"


def job_id(run_id: str, task_id: str) -> str:
    """Deterministic arq job id: enqueuing the same task twice is a no-op."""
    return f"{PREFIX}:{run_id}:{task_id}"


def run_of_job(job: str) -> str:
    """The run id inside a `job_id`."""
    return job.split(":", 2)[1]


def lease_key(job: str) -> str:
    """arq's in-progress key of a job: while it exists no other worker starts the job. Workers
    keep it alive with a short TTL (the lease) instead of arq's job timeout + 10 s."""
    return in_progress_key_prefix + job


# -- messages ------------------------------------------------------------------------------


class TaskJob(pydantic.BaseModel):
    """The keyword arguments of an arq job: which task of which run to execute."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    run_id: str
    checkpoint_id: str
    step: int
    task_id: str
    graph: str
    fingerprint: str

    @pydantic.field_validator("run_id")
    @classmethod
    def _is_run_id(cls, value: str) -> str:
        tag_of(value)
        return value


class InboxNote(pydantic.BaseModel):
    kind: Literal["submit", "task_done", "cancel", "wake"]
    run_id: str


class GraphInfo(pydantic.BaseModel):
    """What the orchestrators serving a graph register, so producers can check the name."""

    name: str
    fingerprint: str
    queue: str


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


class RunRecord(pydantic.BaseModel):
    """A run as read from its hash, with its current checkpoint.

    `kind` says how it starts: from an input (`input`), by resuming its thread where it stopped
    (`resume`, with `resume` values for interrupts and `checkpoint_id` for a fork of an older
    checkpoint), or as the one-task step of `update_state` (`update`, writing `input` as node
    `as_node`). `first_checkpoint` is the checkpoint the run started from.
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
    as_node: str | None = None
    from_checkpoint: str = ""
    config: dict[str, Any] = {}
    context: Any = None
    error: ErrorInfo | None = None
    cancel_requested: bool = False

    @property
    def tag(self) -> str:
        return tag_of(self.run_id)

    @property
    def checkpoint(self) -> Checkpoint | None:
        return self.saved.checkpoint if self.saved else None


def encode_note(note: InboxNote) -> bytes:
    return codec.packb(note.model_dump())


def decode_note(data: bytes) -> InboxNote:
    return InboxNote.model_validate(codec.unpackb(data))


def encode_info(info: GraphInfo) -> bytes:
    return codec.packb(info.model_dump())


def decode_info(data: bytes) -> GraphInfo:
    return GraphInfo.model_validate(codec.unpackb(data))


def encode_error(error: ErrorInfo) -> dict[str, Any]:
    return {
        "type": error.type,
        "module": error.module,
        "message": error.message,
        "traceback": error.traceback,
        "node": error.node,
        "args": list(error.args) if error.args is not None else None,
    }


def decode_error(data: Any) -> ErrorInfo:
    m = ErrorModel.model_validate(data)
    args = tuple(m.args) if m.args is not None else None
    return ErrorInfo(m.type, m.module, m.message, m.traceback, m.node, args)


class ErrorModel(pydantic.BaseModel):
    type: str
    module: str
    message: str
    traceback: str = ""
    node: str = ""
    args: list[str | int | float | bool | None] | None = None


class _TaskModel(pydantic.BaseModel):
    id: str
    node: str
    send_index: int | None = None
    arg: Any = None
    update: bool = False


class _CheckpointModel(pydantic.BaseModel):
    step: int
    values: dict[str, Any]
    tasks: list[_TaskModel]
    seen: dict[str, list[str]] = {}
    wrote: bool = False
    step_wrote: bool = False
    updated_by: list[str] = []


class _OutcomeModel(pydantic.BaseModel):
    task_id: str
    node: str
    writes: dict[Any, Any] | None = None
    goto: list[str] = []
    sends: list[tuple[str, Any]] = []
    error: ErrorModel | None = None
    interrupts: list[tuple[str, Any]] = []
    node_error: ErrorModel | None = None


def encode_checkpoint(cp: Checkpoint) -> bytes:
    return codec.pack_values(
        {
            "step": cp.step,
            "values": dict(cp.values),
            "tasks": [
                {"id": t.id, "node": t.node, "send_index": t.send_index, "arg": t.arg,
                 "update": t.update}
                for t in cp.tasks
            ],
            "seen": {k: list(v) for k, v in cp.seen.items()},
            "wrote": cp.wrote,
            "step_wrote": cp.step_wrote,
            "updated_by": list(cp.updated_by),
        },
        where="checkpoint",
    )


def decode_checkpoint(data: bytes) -> Checkpoint:
    m = _CheckpointModel.model_validate(codec.unpackb(data))
    return Checkpoint(
        step=m.step,
        values=m.values,
        tasks=tuple(Task(t.id, t.node, t.send_index, t.arg, t.update) for t in m.tasks),
        seen={k: tuple(v) for k, v in m.seen.items()},
        wrote=m.wrote,
        step_wrote=m.step_wrote,
        updated_by=tuple(m.updated_by),
    )


def encode_saved(saved: SavedCheckpoint) -> bytes:
    return codec.pack_values(
        {
            "id": saved.id,
            "parent": saved.parent,
            "source": saved.source,
            "created_at": saved.created_at,
            "run_id": saved.run_id,
            "checkpoint": encode_checkpoint(saved.checkpoint),
            "view_values": saved.view_values,
            "view_next": saved.view_next,
            "transient": saved.transient,
        },
        where="checkpoint",
    )


def decode_saved(data: bytes) -> SavedCheckpoint:
    fields = codec.unpackb(data)
    if not isinstance(fields, dict) or not isinstance(fields.get("checkpoint"), bytes):
        raise ValueError("not a saved checkpoint")
    return SavedCheckpoint.model_validate(
        {**fields, "checkpoint": decode_checkpoint(fields["checkpoint"])}
    )


def encode_outcome(outcome: TaskOutcome, max_bytes: int = MAX_UPDATE_BYTES) -> bytes:
    """Encode a task outcome; an unserializable write raises an error naming node and key, an
    outcome over `max_bytes` an UpdateTooLargeError naming node and largest keys."""
    if outcome.writes:
        codec.pack_values(outcome.writes, where=f"update of node {outcome.node!r},")
    data = codec.packb(
        {
            "task_id": outcome.task_id,
            "node": outcome.node,
            "writes": dict(outcome.writes) if outcome.writes is not None else None,
            "goto": list(outcome.goto),
            "sends": [(s.node, s.arg) for s in outcome.sends],
            "error": encode_error(outcome.error) if outcome.error else None,
            "interrupts": [list(i) for i in outcome.interrupts],
            "node_error": encode_error(outcome.node_error) if outcome.node_error else None,
        }
    )
    if len(data) > max_bytes:
        raise UpdateTooLargeError(
            f"the update of node {outcome.node!r} is {len(data):,} bytes, over the limit of "
            f"{max_bytes:,} (largest: {describe_sizes(outcome)}); keep large data outside the "
            "state (object storage, a database) and put a reference in it"
        )
    return data


def describe_sizes(outcome: TaskOutcome) -> str:
    """The outcome's largest keys with their encoded sizes, for error messages."""
    sizes = sorted(
        ((len(codec.packb(v)), str(k)) for k, v in (outcome.writes or {}).items()), reverse=True
    )
    if outcome.sends:
        sizes.append((len(codec.packb([s.arg for s in outcome.sends])), "Send arguments"))
        sizes.sort(reverse=True)
    return ", ".join(f"key {k!r} {n:,} bytes" for n, k in sizes[:3]) or "no keys"


def decode_outcome(data: bytes) -> TaskOutcome:
    m = _OutcomeModel.model_validate(codec.unpackb(data))
    return TaskOutcome(
        task_id=m.task_id,
        node=m.node,
        writes=m.writes,
        goto=tuple(m.goto),
        sends=tuple(Send(node, arg) for node, arg in m.sends),
        error=decode_error(m.error.model_dump()) if m.error else None,
        interrupts=tuple((i, v) for i, v in m.interrupts),
        node_error=decode_error(m.node_error.model_dump()) if m.node_error else None,
    )


def decode_run(run_id: str, fields: Mapping[bytes, bytes], saved: bytes | None) -> RunRecord:
    """Read a run hash (and its current checkpoint). Values stored with `codec` are decoded;
    plain ones are UTF-8."""
    f = {k.decode(): v for k, v in fields.items()}

    def text(name: str) -> str:
        return f[name].decode() if name in f else ""

    def packed(name: str) -> Any:
        return codec.unpackb(f[name]) if f.get(name) else None

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
        saved=decode_saved(saved) if saved else None,
        input=packed("input"),
        resume=packed("resume"),
        has_resume="resume" in f,
        as_node=text("as_node") or None,
        from_checkpoint=text("from_checkpoint"),
        config=packed("config") or {},
        context=packed("context"),
        error=decode_error(packed("error")) if f.get("error") else None,
        cancel_requested=f.get("cancel") == b"1",
    )


def encode_event(mode: EventMode, payload: Any) -> dict[str, bytes]:
    return {"mode": mode.encode(), "data": codec.packb(payload)}


def decode_event(fields: Mapping[bytes, bytes]) -> tuple[str, Any]:
    return fields[b"mode"].decode(), codec.unpackb(fields[b"data"])


# -- scripts: each touches the keys of one thread only (one hash slot) -----------------------

COMMIT_SCRIPT = """
-- KEYS: 1 run hash, 2 events stream, 3 thread hash, 4 checkpoints hash, 5 history list,
--       6 writes hash of the checkpoint being resumed (any key of the thread if none)
-- ARGV: 1 expected version, 2 number of run field pairs, 3 id of a checkpoint to save ('' for
--       none), 4 its blob, 5 '1' to list it in the history as the thread's latest, 6 '1' when
--       the run ends (the thread is free again), 7 run id, 8 number of outcomes to set aside
--       (tasks to run again), 9 number of writes field pairs to set; then run field pairs,
--       task ids of outcomes to set aside, writes field pairs to set, event (mode, data) pairs.
-- Nothing happens unless the run's version is still ARGV[1]: the compare-and-set that lets
-- several orchestrators serve one Redis.
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', tostring(tonumber(ARGV[1]) + 1))
local i = 10
for _ = 1, tonumber(ARGV[2]) do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]); i = i + 2 end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
  redis.call('HSET', KEYS[1], 'checkpoint_id', ARGV[3])
  if ARGV[5] == '1' then
    redis.call('LPUSH', KEYS[5], ARGV[3])
    redis.call('HSET', KEYS[3], 'latest', ARGV[3])
  end
end
for _ = 1, tonumber(ARGV[8]) do  -- an outcome to run again is kept as a prior, for history
  local task, old = ARGV[i], redis.call('HGET', KEYS[6], ARGV[i])
  if old then
    local n = redis.call('HINCRBY', KEYS[6], 'priors:' .. task, 1)
    redis.call('HSET', KEYS[6], 'prior:' .. task .. ':' .. n, old)
    redis.call('HDEL', KEYS[6], task)
  end
  i = i + 1
end
for _ = 1, tonumber(ARGV[9]) do redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1]); i = i + 2 end
if ARGV[6] == '1' and redis.call('HGET', KEYS[3], 'run') == ARGV[7] then
  redis.call('HDEL', KEYS[3], 'run')
end
while i < #ARGV do
  redis.call('XADD', KEYS[2], '*', 'mode', ARGV[i], 'data', ARGV[i + 1]); i = i + 2
end
return 1
"""

CREATE_RUN_SCRIPT = """
-- KEYS: 1 thread hash, 2 run hash; ARGV: 1 run id, 2 thread id, 3 '1' to keep the thread
-- until deleted, then run field pairs. Returns '' when created, else the id of the run the
-- thread is busy with (one run at a time per thread).
local busy = redis.call('HGET', KEYS[1], 'run')
if busy then return busy end
redis.call('HSET', KEYS[1], 'thread_id', ARGV[2], 'run', ARGV[1])
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'keep', '1') end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return ''
"""

LOAD_RUN_SCRIPT = """
-- KEYS: 1 run hash, 2 checkpoints hash. Returns {run fields, its current checkpoint or false}.
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
local id = redis.call('HGET', KEYS[1], 'checkpoint_id')
local saved = false
if id and id ~= '' then saved = redis.call('HGET', KEYS[2], id) end
return {fields, saved}
"""

POST_OUTCOME_SCRIPT = """
-- KEYS[1] writes hash, KEYS[2] events stream, KEYS[3] claims hash
-- ARGV task id, outcome, attempt ('' for none), then event pairs
-- Returns 1 when recorded, 0 when the task already had an outcome, -1 when a newer attempt
-- owns the task (this poster is stale: its lease ran out and the task was started again).
if ARGV[3] ~= '' and redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[3] then return -1 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
for i = 4, #ARGV, 2 do
  redis.call('XADD', KEYS[2], '*', 'mode', ARGV[i], 'data', ARGV[i + 1])
end
return 1
"""

CLAIM_SCRIPT = """
-- KEYS[1] claims hash, KEYS[2] writes hash; ARGV[1] task id
-- Starts a new attempt of the task: returns {attempt, lost starts, failures, resume values or
-- false}, or {0} when the task already has an outcome. A start counts as lost until it ends
-- or is handed back.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {0} end
local attempt = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local lost = redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':lost', 1)
local failures = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':failures') or '0')
local resume = redis.call('HGET', KEYS[2], 'resume:' .. ARGV[1])
return {attempt, lost - 1, failures, resume}
"""

END_ATTEMPT_SCRIPT = """
-- KEYS[1] claims hash; ARGV[1] task id, ARGV[2] attempt, ARGV[3] 1 if the attempt failed
-- An attempt that ends without an outcome (handed back, or failed and to be retried) is not
-- lost; a failed one counts toward the retry policy. Only the owning attempt may say so.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return -1 end
redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':lost', -1)
return redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':failures', tonumber(ARGV[3]))
"""
