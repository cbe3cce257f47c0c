"""What a run's commit writes: a function from the run's record and its next position (and, when
it ends the run, the time) to the call of COMMIT_SCRIPT, apart from the store that makes it
(`RunStore.commit`, or with the post of an outcome), so that the orchestrator and the workers
plan the same commits."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from arqgraph import protocol
from arqgraph.core import codec
from arqgraph.core.pregel import TaskOutcome
from arqgraph.errors import ErrorInfo
from arqgraph.protocol import EventMode, RunRecord, SavedCheckpoint
from arqgraph.storage.events import ENDS_KEPT
from arqgraph.storage.queue import ScriptCall


@dataclass(frozen=True)
class WritesEdit:
    """Changes to a checkpoint's pending writes, made with a commit: outcomes to drop (failed
    or interrupted tasks about to run again), resume values to set, and outcomes to record
    (the writes an update makes as a node the checkpoint's step runs, as LangGraph records
    them)."""

    checkpoint_id: str
    drop: tuple[str, ...] = ()
    resume: Mapping[str, list[Any]] = field(default_factory=dict)
    outcomes: Mapping[str, TaskOutcome] = field(default_factory=dict)  # to record as posted


@dataclass(frozen=True)
class Commit:
    """A run's commit (`commit_call`), made alone (`RunStore.commit`) or with the post
    of the outcome that makes it due (`RunStore.post_outcome`); `saved`: the checkpoint it
    saves, of `size` bytes; `ends`: the run's graph, final status and submit time, when it
    ends the run (for `arqgraph.observe`'s hooks); `blobs`: the large values its checkpoint
    and events refer to, to keep before it is made (`arqgraph.storage.blobs.put`), the events'
    among them `event_refs`; `prunes`: its run keeps its thread's history to a depth (see
    `arqgraph.storage.history`)."""

    call: ScriptCall
    saved: SavedCheckpoint | None
    size: int
    ends: tuple[str, str, float | None] | None = None
    run_id: str = ""
    blobs: Mapping[str, bytes] = field(default_factory=dict)
    event_refs: frozenset[str] = frozenset()  # the blobs its events refer to
    prunes: bool = False  # its run keeps its thread's history to a depth


def commit_call(
    record: RunRecord,
    *,
    status: str | None = None,
    saved: SavedCheckpoint | None = None,
    new: bool = False,
    fields: Mapping[str, str | bytes] | None = None,
    error: ErrorInfo | None = None,
    edit: WritesEdit | None = None,
    events: Sequence[tuple[EventMode, Any]] = (),
    retention: int | None = None,
    jobs: ScriptCall | None = None,
) -> Commit:
    """The commit of the run's next position, to be made iff nobody else moved the run
    since `record` was read (by `RunStore.commit`, or with the post of an outcome): its
    status, its checkpoint (`new` ones are listed in the thread's history unless transient;
    others are saved again, with their view), edits of pending writes, events. A final
    status frees the thread and retires the run at once (see `retire_call`): its keys expire
    in `retention` seconds. A run with a history depth prunes its thread's older checkpoints
    as the commit lists a new one (see `prune` in the scripts). `jobs`: the enqueue of the new step's jobs
    (`JobQueue.single_enqueue`), made with the commit."""
    run_fields: dict[str, str | bytes] = dict(fields or {})
    if status is not None:
        run_fields["status"] = status
    if error is not None:
        run_fields["error"] = codec.packb(protocol.encode_error(error))
    final = status in protocol.FINAL_STATUSES
    if final and retention is None:
        raise ValueError(f"a run that ends ({status}) needs a retention")
    if final:  # (for `arqgraph runs`' durations; the planner's clock, as `created` the client's)
        run_fields.setdefault("finished", str(time.time()))
    tag = record.tag
    edit = edit or WritesEdit(record.checkpoint_id or "-")
    blobs: dict[str, bytes] = {}  # (large values, kept once: see arqgraph.protocol.blobs)
    blob = protocol.encode_saved(saved, blobs) if saved else b""
    depth = int(run_fields.get("history_depth") or record.history_depth or 0)  # (its start's)
    args: list[Any] = [
        f"{record.version}:{record.checkpoint_id}", str(len(run_fields)),
        saved.id if saved else "", blob,
        "1" if saved is not None and new and not saved.transient else "0",
        str(retention) if final else "",
        record.run_id, str(len(edit.drop)), str(len(edit.resume) + len(edit.outcomes)),
        protocol.writes_key(tag, ""), protocol.claims_key(tag, ""), ENDS_KEPT, len(events),
        depth or "",
    ]
    for name, value in run_fields.items():
        args += [name, value]
    args += list(edit.drop)
    for task_id, values in edit.resume.items():
        args += [f"resume:{task_id}", protocol.encode_resume(values)]
    for task_id, outcome in edit.outcomes.items():
        args += [task_id, protocol.encode_outcome(outcome)]
    event_blobs: dict[str, bytes] = {}
    args += protocol.event_args(events, event_blobs)
    blobs.update(event_blobs)
    keys = [*_retired_keys(record), protocol.writes_key(tag, edit.checkpoint_id)]
    if final:
        keys += _ending_keys(record)
    if jobs is not None:
        if final:
            raise ValueError("a run that ends enqueues no jobs")
        if saved is None or not new:  # (the script enqueues them as new: see `enqueue`)
            raise ValueError("a commit enqueues only the jobs of the new checkpoint it saves")
        keys += jobs.keys
        args += jobs.args
    ends = (record.graph, status, record.created) if final and status else None
    size = len(blob) + sum(len(b) for b in blobs.values())
    return Commit(ScriptCall(keys, args), saved, size, ends, record.run_id, blobs,
                  frozenset(event_blobs), depth > 0)


def retire_call(record: RunRecord, seconds: int) -> ScriptCall:
    """RETIRE_SCRIPT's call for a run that ended but is still active (see `RunStore.retire`):
    the retirement a commit that ends a run makes in the same script."""
    tag = record.tag
    return ScriptCall([*_retired_keys(record), *_ending_keys(record)],
                      [seconds, record.run_id, protocol.writes_key(tag, ""),
                       protocol.claims_key(tag, ""), ENDS_KEPT])


def _retired_keys(record: RunRecord) -> list[str]:
    """The keys that expire when a run is retired (the `retire` function of COMMIT_SCRIPT and
    RETIRE_SCRIPT): its hash and events, its thread's hash, checkpoints and history."""
    tag = record.tag
    return [protocol.run_key(record.run_id), protocol.events_key(record.run_id),
            protocol.thread_key(tag), protocol.checkpoints_key(tag), protocol.history_key(tag)]


def _ending_keys(record: RunRecord) -> list[str]:
    """The keys a run's end touches besides its thread's: its graph's active set, and the ends
    list of the client awaiting it, if any."""
    keys = [protocol.active_key(record.graph)]
    if record.waiter:
        keys.append(protocol.ends_key(record.waiter))
    return keys
