"""The wire protocol: every Redis key arqgraph uses and every message it writes there.

Keys of one run share the hash tag `{run_id}` so that a run's multi-key operations (the Lua
scripts below) also work on a Redis Cluster. Messages are msgpack (see `shared.codec`) and are
validated with pydantic when read, so a garbage payload fails with a clear error, never a crash.
"""

from __future__ import annotations

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

RunStatus = Literal["pending", "running", "done", "failed", "cancelled"]
FINAL_STATUSES = ("done", "failed", "cancelled")
EventMode = Literal["values", "updates", "custom", "end"]


# -- keys ----------------------------------------------------------------------------------


def run_key(run_id: str) -> str:
    """Hash: the run's record (graph, status, version, checkpoint, input, config, error)."""
    return f"{PREFIX}:{{{run_id}}}:run"


def outcomes_key(run_id: str) -> str:
    """Hash: task id -> outcome. The first outcome posted for a task wins."""
    return f"{PREFIX}:{{{run_id}}}:outcomes"


def events_key(run_id: str) -> str:
    """Stream: the run's events (values, updates, custom, end) for producers to read."""
    return f"{PREFIX}:{{{run_id}}}:events"


def claims_key(run_id: str) -> str:
    """Hash: per task, the attempt that owns it now (`<task>`), its starts that never ended
    (`<task>:lost`) and its failed tries (`<task>:failures`). The attempt fences stale workers."""
    return f"{PREFIX}:{{{run_id}}}:claims"


def inbox_key(graph: str) -> str:
    """List: notifications (run submitted, task done, cancel) for the graph's orchestrators."""
    return f"{PREFIX}:inbox:{graph}"


def active_key(graph: str) -> str:
    """Set: ids of the graph's runs that have not finished; swept in case a notice was lost."""
    return f"{PREFIX}:active:{graph}"


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
    step: int
    task_id: str
    graph: str
    fingerprint: str


class InboxNote(pydantic.BaseModel):
    kind: Literal["submit", "task_done", "cancel", "wake"]
    run_id: str


class GraphInfo(pydantic.BaseModel):
    """What the orchestrators serving a graph register, so producers can check the name."""

    name: str
    fingerprint: str
    queue: str


class RunRecord(pydantic.BaseModel):
    """A run as read from its hash."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)

    run_id: str
    graph: str
    status: RunStatus
    version: int
    fingerprint: str = ""
    checkpoint: Checkpoint | None = None
    input: Any = None
    config: dict[str, Any] = {}
    context: Any = None
    error: ErrorInfo | None = None
    cancel_requested: bool = False


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


class _CheckpointModel(pydantic.BaseModel):
    step: int
    values: dict[str, Any]
    tasks: list[_TaskModel]
    seen: dict[str, list[str]] = {}
    wrote: bool = False
    step_wrote: bool = False


class _OutcomeModel(pydantic.BaseModel):
    task_id: str
    node: str
    writes: dict[Any, Any] | None = None
    goto: list[str] = []
    sends: list[tuple[str, Any]] = []
    error: ErrorModel | None = None


def encode_checkpoint(cp: Checkpoint) -> bytes:
    return codec.pack_values(
        {
            "step": cp.step,
            "values": dict(cp.values),
            "tasks": [
                {"id": t.id, "node": t.node, "send_index": t.send_index, "arg": t.arg}
                for t in cp.tasks
            ],
            "seen": {k: list(v) for k, v in cp.seen.items()},
            "wrote": cp.wrote,
            "step_wrote": cp.step_wrote,
        },
        where="checkpoint",
    )


def decode_checkpoint(data: bytes) -> Checkpoint:
    m = _CheckpointModel.model_validate(codec.unpackb(data))
    return Checkpoint(
        step=m.step,
        values=m.values,
        tasks=tuple(Task(t.id, t.node, t.send_index, t.arg) for t in m.tasks),
        seen={k: tuple(v) for k, v in m.seen.items()},
        wrote=m.wrote,
        step_wrote=m.step_wrote,
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
    )


def decode_run(run_id: str, fields: Mapping[bytes, bytes]) -> RunRecord:
    """Read a run hash. Values stored with `codec` are decoded; plain ones are UTF-8."""
    f = {k.decode(): v for k, v in fields.items()}
    return RunRecord(
        run_id=run_id,
        graph=f["graph"].decode(),
        status=f["status"].decode(),  # type: ignore[arg-type]  # validated by pydantic
        version=int(f["version"]),
        fingerprint=f.get("fingerprint", b"").decode(),
        checkpoint=decode_checkpoint(f["checkpoint"]) if f.get("checkpoint") else None,
        input=codec.unpackb(f["input"]) if "input" in f else None,
        config=codec.unpackb(f["config"]) if "config" in f else {},
        context=codec.unpackb(f["context"]) if "context" in f else None,
        error=decode_error(codec.unpackb(f["error"])) if f.get("error") else None,
        cancel_requested=f.get("cancel") == b"1",
    )


def encode_event(mode: EventMode, payload: Any) -> dict[str, bytes]:
    return {"mode": mode.encode(), "data": codec.packb(payload)}


def decode_event(fields: Mapping[bytes, bytes]) -> tuple[str, Any]:
    return fields[b"mode"].decode(), codec.unpackb(fields[b"data"])


# -- scripts: each touches the keys of one run only (one hash slot) --------------------------

COMMIT_SCRIPT = """
-- KEYS[1] run hash, KEYS[2] events stream
-- ARGV[1] expected version, ARGV[2] number of field pairs, then fields, then event pairs
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'version', tostring(tonumber(ARGV[1]) + 1))
for i = 3, 2 + 2 * n, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 3 + 2 * n, #ARGV, 2 do
  redis.call('XADD', KEYS[2], '*', 'mode', ARGV[i], 'data', ARGV[i + 1])
end
return 1
"""

POST_OUTCOME_SCRIPT = """
-- KEYS[1] outcomes hash, KEYS[2] events stream, KEYS[3] claims hash
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
-- KEYS[1] claims hash, KEYS[2] outcomes hash; ARGV[1] task id
-- Starts a new attempt of the task: returns {attempt, lost starts, failures}, or {0, 0, 0}
-- when the task already has an outcome. A start counts as lost until it ends or is handed back.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {0, 0, 0} end
local attempt = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local lost = redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':lost', 1)
local failures = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':failures') or '0')
return {attempt, lost - 1, failures}
"""

END_ATTEMPT_SCRIPT = """
-- KEYS[1] claims hash; ARGV[1] task id, ARGV[2] attempt, ARGV[3] 1 if the attempt failed
-- An attempt that ends without an outcome (handed back, or failed and to be retried) is not
-- lost; a failed one counts toward the retry policy. Only the owning attempt may say so.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return -1 end
redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':lost', -1)
return redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':failures', tonumber(ARGV[3]))
"""
