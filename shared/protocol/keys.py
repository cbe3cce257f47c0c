"""Keys: every Redis key, channel and id format arqgraph uses (see `arqgraph.protocol`)."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Literal

from arq.constants import in_progress_key_prefix

from arqgraph.core.graphs import root_graph

PREFIX = "arqgraph"
DEFAULT_QUEUE = f"{PREFIX}:queue"
GRAPHS_KEY = f"{PREFIX}:graphs"
WORKERS_KEY = f"{PREFIX}:workers"
"""Hash: worker id -> its heartbeat (`Heartbeat`), rewritten as often as the beat says."""
ORCHESTRATORS_KEY = f"{PREFIX}:orchestrators"
"""Hash: orchestrator id -> its heartbeat (`Heartbeat`), rewritten as often as the beat says."""
HEARTBEAT_INTERVAL = 4.0  # seconds between the heartbeats of a process at work
IDLE_HEARTBEAT_INTERVAL = 20.0  # seconds between the heartbeats of an idle process: its beat
# says nothing new, and an idle pool should cost next to nothing
HEARTBEAT_STALE = 10.0  # a beat this much older than HEARTBEAT_INTERVAL is a dead process's;
# a beat that promised its next one later gets as much more (`Heartbeat.every`)
NOT_A_JOB = "-"  # an entry of a ready list that is no job: it wakes a worker that pops it
TASK_FUNCTION = "arqgraph.run_task"
MAX_UPDATE_BYTES = 16 * 1024 * 1024

RunStatus = Literal["pending", "running", "done", "failed", "cancelled", "interrupted"]
FINAL_STATUSES = ("done", "failed", "cancelled", "interrupted")
RunKind = Literal["input", "resume", "update"]
CheckpointSource = Literal["input", "loop", "update", "fork"]
EventMode = Literal["values", "updates", "custom", "tasks", "checkpoints", "messages", "child",
                    "calls", "end"]  # ("calls": a task call's run, for tracers; never streamed)


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


def keyed_run_id(thread_id: str, key: str) -> str:
    """The run id a producer's own key names on a thread: the same each time, so a submit
    retried with it finds the run it made (a run id of the thread is kept as it is)."""
    tag = thread_tag(thread_id)
    if key.startswith(f"{tag}.") and len(key) > len(tag) + 1:
        return key
    return f"{tag}.{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def tag_of(run_id: str) -> str:
    tag, dot, _ = run_id.partition(".")
    if not dot or not tag:
        raise ValueError(f"{run_id!r} is not an arqgraph run id")
    return tag


def run_key(run_id: str) -> str:
    """Hash: the run's record (graph, status, version, checkpoint id, input, config, error)."""
    return f"{PREFIX}:{{{tag_of(run_id)}}}:run:{run_id}"


RUN_KEYS_PATTERN = f"{PREFIX}:*:run:*"
"""SCAN pattern of every run's record (`run_key`): what `arqgraph runs` lists."""


def run_of_key(key: str) -> str:
    """The run id of a `run_key`."""
    return key.rsplit(":run:", 1)[1]


EVENTS_KEPT = 100_000
"""How many events a run's stream keeps at most: older ones are trimmed as new ones come
(approximately: Redis trims whole blocks of entries), so a consumer that stops reading, or
vanishes, cannot make Redis hold a run's events without bound. A reader that falls further
behind than this is told (`EventsDroppedError`)."""


def events_key(run_id: str) -> str:
    """Stream: the run's events (values, updates, custom, end) for producers to read, the
    last EVENTS_KEPT of them."""
    return f"{PREFIX}:{{{tag_of(run_id)}}}:events:{run_id}"


def children_key(run_id: str) -> str:
    """Set: the child runs (subgraphs) the run's tasks started, kept apart from its events,
    which are trimmed. It lives as long as the events stream (its key plus `:children`: the
    retire script expires it with the stream)."""
    return f"{events_key(run_id)}:children"


def thread_key(tag: str) -> str:
    """Hash: the thread's id, its latest checkpoint id (`latest`), the run it is busy with
    (`run`), and whether it lives until deleted (`keep`)."""
    return f"{PREFIX}:{{{tag}}}:thread"


def checkpoints_key(tag: str) -> str:
    """Hash: checkpoint id -> saved checkpoint (see `SavedCheckpoint`)."""
    return f"{PREFIX}:{{{tag}}}:checkpoints"


def blobs_key(tag: str) -> str:
    """Hash: blob id -> a large value of the thread's checkpoints or events, packed (see
    `arqgraph.protocol.blobs`), kept once however many checkpoints and events refer to it. It
    lives as long as the checkpoints (its key is theirs plus `:blobs`: the retire script
    expires it with them)."""
    return f"{checkpoints_key(tag)}:blobs"


def event_blobs_key(run_id: str) -> str:
    """Set: the ids of the blobs the run's events refer to, so that pruning a thread's history
    keeps those while its events are readable: it lives as long as the events stream (its key
    plus `:blobs`: the retire script expires it with the stream)."""
    return f"{events_key(run_id)}:blobs"


def blob_runs_key(tag: str) -> str:
    """Set: the runs of the thread whose events refer to blobs (see `event_blobs_key`). It
    lives as long as the blobs (its key is theirs plus `:runs`)."""
    return f"{blobs_key(tag)}:runs"


def orphans_key(tag: str) -> str:
    """Set: namespaces of subgraphs that steps pruned from the thread's history ran (see
    `prune` in the scripts), whose threads are deleted once the thread's run ends."""
    return f"{thread_key(tag)}:orphans"


def history_key(tag: str) -> str:
    """List: the thread's checkpoint ids, newest first."""
    return f"{PREFIX}:{{{tag}}}:history"


def writes_key(tag: str, checkpoint_id: str) -> str:
    """Hash: task id -> outcome of that checkpoint's step (the first posted wins), and
    `resume:<task id>` -> the values its interrupts resume with. Kept with the checkpoint: a
    resumed run re-runs only the tasks without a successful outcome, setting the failed or
    interrupted outcome aside as `prior:<task id>:<n>` (counted by `priors:<task id>`)."""
    return f"{PREFIX}:{{{tag}}}:writes:{checkpoint_id}"


def call_done_key(tag: str, checkpoint_id: str, call_id: str) -> str:
    """List: a token pushed when a task call of the Functional API has its result (in the
    checkpoint's writes hash as `fn:<call id>`, its arguments as `fnargs:<call id>`, and how
    many times it was cancelled as `fncancel:<call id>`)."""
    return f"{PREFIX}:{{{tag}}}:called:{checkpoint_id}:{call_id}"


def claims_key(tag: str, checkpoint_id: str) -> str:
    """Hash: per task of a checkpoint's step, the attempt that owns it now (`<task>`), how
    many of its starts ended (`<task>:ended`: handed back, failed, or posted an outcome later
    set aside; the others were lost) and its failed tries (`<task>:failures`). The attempt
    fences stale workers."""
    return f"{PREFIX}:{{{tag}}}:claims:{checkpoint_id}"


def inbox_key(graph: str) -> str:
    """List: notifications (run submitted, task done, cancel) for the graph's orchestrators.
    A subgraph's runs share their root graph's: its orchestrators serve them."""
    return f"{PREFIX}:inbox:{root_graph(graph)}"


def ends_key(waiter: str) -> str:
    """List: ids of runs that ended, for the producer (a client, `waiter`) that submitted them
    and awaits their results: one blocking pop per producer instead of a blocking read of the
    events of each run."""
    return f"{PREFIX}:ends:{waiter}"


DEAD_LETTERS_KEY = f"{PREFIX}:dead-letters"
"""Stream: data arqgraph could not read (bad bytes, bad msgpack, wrong types, unknown names),
set aside so that no process reads it again, with where it was and why (see
`arqgraph.storage.dead_letters`); capped at `DEAD_LETTERS_KEPT` entries."""
DEAD_LETTERS_KEPT = 10_000

STORE_NAMESPACES_KEY = f"{PREFIX}:store:namespaces"
"""Set: the namespaces of the long-term memory store that hold items (JSON lists)."""


def store_key(namespace: tuple[str, ...]) -> str:
    """Hash: the long-term memory store's items of one namespace, by key."""
    return f"{PREFIX}:store:ns:{json.dumps(list(namespace))}"


# -- the HTTP server (`arqgraph serve`) --------------------------------------------------------
#
# What LangGraph's platform API shows beside the cluster's own records: a thread's metadata and
# its runs, a run's assistant, metadata and stream options. Any server process reads them.

SERVED_THREADS_KEY = f"{PREFIX}:served:threads"
"""Sorted set: ids of the threads created through the server, scored by creation time."""


SERVED_CRONS_KEY = f"{PREFIX}:served:crons"
"""Hash: cron id -> the server's record of a cron (msgpack: schedule, time zone, its run)."""


SERVED_ASSISTANTS_KEY = f"{PREFIX}:served:assistants"
"""Sorted set: ids of the assistants created through the server, scored by creation time."""


def served_assistant_key(assistant_id: str) -> str:
    """Hash: an assistant created through the server: each version (msgpack) under `v<N>`, the
    latest one's number under `latest` and its copy under `doc`, the last number under `count`."""
    return f"{PREFIX}:served:assistant:{assistant_id}"


def served_cron_fire_key(cron_id: str, fire: int) -> str:
    """String: set (NX) by the one server that starts a cron's run for the fire at `fire`
    (epoch seconds), so each fire starts one run however many servers are up."""
    return f"{PREFIX}:served:cron:{cron_id}:{fire}"


SERVED_DUTIES_KEY = f"{PREFIX}:served:duties"
"""Sorted set: what servers must do for runs even if the server that took it on stops (call a
run's webhook when it ends, start a delayed run, cancel a run whose client left, delete a
threadless cron fire's thread), by duty id
(`<kind>:<run id>`), scored by when another server may take it: its due time, or the end of
the lease of the server doing it (which renews it while alive)."""


def served_duty_key(duty_id: str) -> str:
    """Hash: a duty's `doc` (msgpack: what to do) and its `holder` (the server doing it:
    `host:pid:token`)."""
    return f"{PREFIX}:served:duty:{duty_id}"


def served_duty_claim_key(duty_id: str, due: float) -> str:
    """String: set (NX) by the one server that takes the duty over when it fell due at `due`
    (its score then), so that one server does it however many look."""
    return f"{PREFIX}:served:duty:{duty_id}:claim:{due!r}"


def served_thread_key(thread_id: str) -> str:
    """String: the server's record of a thread (msgpack: metadata, times, graph)."""
    return f"{PREFIX}:{{{thread_tag(thread_id)}}}:served:thread"


def served_runs_key(thread_id: str) -> str:
    """Sorted set: ids of the thread's runs started through the server, scored by start time."""
    return f"{PREFIX}:{{{thread_tag(thread_id)}}}:served:runs"


def served_run_key(run_id: str) -> str:
    """String: the server's record of a run (msgpack: assistant, metadata, stream options)."""
    return f"{PREFIX}:{{{tag_of(run_id)}}}:served:run:{run_id}"


def active_key(graph: str) -> str:
    """Set: ids of the graph's runs that have not finished; swept in case a notice was lost.
    A subgraph's runs are its root graph's."""
    return f"{PREFIX}:active:{root_graph(graph)}"


# -- subgraphs -------------------------------------------------------------------------------
#
# A subgraph runs as a child run of its own, on the pool like any run. Its graph is named after
# the root graph whose orchestrators serve it and the subgraph's own key (name and fingerprint),
# which every process that loaded the root graph's module finds in `arqgraph.core.graphs`
# (which names them: `child_graph`, `root_graph`).


def child_thread(thread_id: str, namespace: str) -> str:
    """The thread a subgraph's checkpoints live on: the parent's, under `namespace`."""
    return f"{thread_id}\x1f{namespace}" if namespace else thread_id


def split_thread(thread: str) -> tuple[str, str]:
    """(the user's thread id, the checkpoint namespace) of a thread `child_thread` made."""
    thread_id, _, namespace = thread.partition("\x1f")
    return thread_id, namespace


def child_run_id(thread: str, parent_run: str, call: str) -> str:
    """The run id of a parent task's subgraph call: the same each time that attempt of the
    task runs again (a redelivered job finds the child run it started)."""
    digest = hashlib.sha256(f"{parent_run}|{call}".encode()).hexdigest()[:32]
    return f"{thread_tag(thread)}.{digest}"


def slots_key(graph: str, node: str) -> str:
    """Sorted set: the jobs running a node that has a `concurrency` limit, scored by the end of
    their lease (a dead worker's slot frees itself)."""
    return f"{PREFIX}:slots:{graph}:{node}"


def rate_key(graph: str, node: str) -> str:
    """Hash: a node's rate limit: when the next call may start (`tat`), and the start times
    reserved by waiting jobs (`at:<job id>`)."""
    return f"{PREFIX}:rate:{graph}:{node}"


def cache_key(namespace: tuple[str, ...], key: str) -> str:
    """String: one cached node result (msgpack of its outcome), expiring with its policy's
    ttl. The namespace is hashed, so that `cache_prefix` finds all of a namespace's keys."""
    return f"{cache_prefix(namespace)}{key}"


def cache_prefix(namespace: tuple[str, ...] | None = None) -> str:
    """The prefix of a namespace's cached results (of all of them when None)."""
    if namespace is None:
        return f"{PREFIX}:cache:"
    digest = hashlib.sha1("\x00".join(namespace).encode()).hexdigest()[:20]
    return f"{PREFIX}:cache:{digest}:"


CANCEL_CHANNEL = f"{PREFIX}:cancelled"
"""Pub/sub channel: ids of cancelled runs, so workers cancel their running nodes at once."""


def lease_wake_channel(token: str) -> str:
    """Pub/sub channel of one worker's lease keeper: a message wakes it from its idle wait, as
    its worker starts a job whose lease it must renew (see `arqgraph.workers.lease`)."""
    return f"{PREFIX}:lease-wake:{token}"


def ready_key(queue: str) -> str:
    """List: ids of the queue's jobs that are due, oldest first. Workers pop them with a
    blocking pop (an idle worker wakes at once, no polling) and take each with arq's in-progress
    key; the queue's sorted set stays the truth, swept now and then for a job whose entry was
    lost (popped by a worker that died) or that came due (a deferred retry)."""
    return f"{queue}:ready"


def job_id(run_id: str, checkpoint_id: str, task_id: str) -> str:
    """Deterministic arq job id: enqueuing the same task twice is a no-op. It names the task's
    run, step and id, so that a worker can start the task as it takes the job (before it has
    read the job)."""
    return f"{PREFIX}:{run_id}:{checkpoint_id}:{task_id}"


def task_of_job(job: str) -> tuple[str, str, str] | None:
    """The run id, checkpoint id and task id a `job_id` names; None for another job id."""
    parts = job.split(":", 3)
    if len(parts) != 4 or parts[0] != PREFIX or "." not in parts[1]:
        return None
    return parts[1], parts[2], parts[3]


def run_of_job(job: str) -> str:
    """The run id inside a `job_id`."""
    return job.split(":", 2)[1]


LEASE_KEY_PREFIX = in_progress_key_prefix
"""arq's in-progress keys are this and the job id (the sweep's script checks them by id)."""


def lease_key(job: str) -> str:
    """arq's in-progress key of a job: while it exists no other worker starts the job. Workers
    keep it alive with a short TTL (the lease) instead of arq's job timeout + 10 s."""
    return LEASE_KEY_PREFIX + job
