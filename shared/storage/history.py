"""A thread's history kept to a depth (the orchestrator's `--history-depth`): what is left to do
once a run that pruned checkpoints ends.

The commit that lists a new checkpoint prunes the older ones itself, with their steps' writes
and claims (`prune` in the scripts). Two things wait for the run's end, when nothing writes
the thread: the threads of the subgraphs that the pruned steps ran, and the large values only
the pruned checkpoints referred to. A blob is written before the commit that refers to it, so
a blob no checkpoint refers to yet may be one a running run is about to commit: the blobs go
only while the thread has no run (COLLECT_BLOBS_SCRIPT checks it). A blob that a kept
checkpoint, a kept step's outcome or the events of a run still readable refer to stays.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.storage.threads import ThreadStore

log = logging.getLogger("arqgraph.history")
NOT_OUTCOMES = (b"__", b"resume:", b"priors:", b"fnargs:", b"fn:", b"fncancel:", b"child:")
"""Fields of a step's writes hash that are not task outcomes (see `protocol.writes_key`)."""


async def collect(redis: ArqRedis, threads: ThreadStore, tag: str) -> int:
    """Delete the subgraph threads and blobs the thread's pruned checkpoints left behind, if
    the thread has no run now (its next run's end collects them otherwise). Returns how many
    blobs went (-1: the thread was busy)."""
    thread = protocol.thread_key(tag)
    thread_id, latest, busy = await redis.hmget(thread, ["thread_id", "latest", "run"])  # type: ignore[misc]
    if busy is not None or latest is None or thread_id is None:
        return -1
    referenced: set[str] = set()
    children: set[bytes] = set()
    for checkpoint_id, raw in (await redis.hgetall(protocol.checkpoints_key(tag))).items():  # type: ignore[misc]
        referenced |= protocol.saved_refs(protocol.decode_saved(raw))
        writes = await redis.hgetall(protocol.writes_key(tag, checkpoint_id.decode()))  # type: ignore[misc]
        referenced |= _written_refs(writes, children)
    await _drop_orphans(redis, threads, tag, thread_id.decode(), children)
    for run in await redis.smembers(protocol.blob_runs_key(tag)):  # type: ignore[misc]
        ids = await redis.smembers(protocol.event_blobs_key(run.decode()))  # type: ignore[misc]
        if not ids:  # its events expired: it refers to nothing any more
            await redis.srem(protocol.blob_runs_key(tag), run)  # type: ignore[misc]
        referenced |= {i.decode() for i in ids}
    unreferenced = [i for i in await redis.hkeys(protocol.blobs_key(tag))  # type: ignore[misc]
                    if i.decode() not in referenced]
    if not unreferenced:
        return 0
    gone = int(await redis.eval(protocol.COLLECT_BLOBS_SCRIPT, 2, thread,  # type: ignore[misc]
                                protocol.blobs_key(tag), latest, *unreferenced))
    if gone > 0:
        log.info("thread %s: %d values no kept checkpoint refers to deleted", tag, gone)
    return gone


def _written_refs(writes: Mapping[bytes, bytes], children: set[bytes]) -> set[str]:
    """The blobs the outcomes of a kept step refer to; the namespaces of the subgraphs it ran
    are added to `children`."""
    found: set[str] = set()
    for field, value in writes.items():
        if field.startswith(b"child:"):
            children.add(value)
        elif not field.startswith(NOT_OUTCOMES):
            found |= protocol.outcome_refs(protocol.decode_outcome(value))
    return found


async def _drop_orphans(redis: ArqRedis, threads: ThreadStore, tag: str, thread_id: str,
                        kept: set[bytes]) -> None:
    """Delete the threads of the subgraphs only pruned steps ran. A subgraph compiled with
    `checkpointer=True` keeps one namespace for all its calls, its state carrying over: its
    thread stays, as a later step may call it again."""
    key = protocol.orphans_key(tag)
    user_thread = protocol.split_thread(thread_id)[0]
    for namespace in await redis.smembers(key):  # type: ignore[misc]
        ns = namespace.decode()
        if namespace not in kept and not _persistent(ns):
            await threads.delete(protocol.child_thread(user_thread, ns))
        await redis.srem(key, namespace)  # type: ignore[misc]


def _persistent(namespace: str) -> bool:
    """Whether a subgraph's namespace is one kept across calls: its own part has no task id
    (`node`, `node|2`, not `node:<task uuid>`; see `arqgraph.storage.namespaces`)."""
    parts = namespace.split("|")
    own = parts[-2] if len(parts) > 1 and parts[-1].isdigit() else parts[-1]
    return ":" not in own
