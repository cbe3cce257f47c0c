"""The parts several twins share, as the Lua scripts share theirs (`arqgraph.protocol.scripts.parts`).
`K` and `A` are KEYS and ARGV with a None in front, so that the indexes are Lua's."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any

from arqgraph.protocol.keys import EVENTS_KEPT
from arqgraph.storage.in_memory.keyspace import Keyspace, as_float, as_int, format_score

Args = list[Any]  # KEYS or ARGV: None, then bytes
Script = Callable[[Keyspace, Args, Args], Any]


def at(values: Args, i: int) -> Any:
    """KEYS[i] or ARGV[i], None past the end (as Lua's nil)."""
    return values[i] if i < len(values) else None


def enqueue(ks: Keyspace, K: Args, A: Args, k: int, a: int, new: bool = False,
             held_for: int | None = None) -> tuple[int, bytes | None]:
    if A[a + 2] != b"":
        ks.hsetnx(K[k + 2], b"__left", A[a + 2])
    added, ready, fresh = 0, [], None
    for j in range((len(K) - 1 - k - 2) // 2):
        job, result = K[k + 3 + 2 * j], K[k + 4 + 2 * j]
        if (new or not ks.exists(result)) and not ks.exists(job):  # (SET NX)
            ks.set(job, A[a + 5 + 2 * j], as_int(A[a + 1]))
            job_id, score = A[a + 4 + 2 * j], as_float(A[a])
            if j == 0 and held_for is not None and A[a + 3] == b"1":
                score += held_for
            ks.zadd(K[k], score, job_id)
            added += 1
            if j > 0 or A[a + 3] != b"1":
                ready.append(job_id)
            if j == 0:
                fresh = A[a + 5]
    if ready:
        ks.push(K[k + 1], ready, left=False)
    return added, fresh


def take(ks: Keyspace, queue: bytes, hold: bytes, body: bytes, job_id: bytes, now: float,
          lease: bytes, holder: bytes) -> tuple[bytes, bytes | None] | None:
    score = ks.zscore(queue, job_id)
    if score is None or score > now or ks.exists(hold):
        return None
    ks.set(hold, holder, as_int(lease))
    ks.zadd(queue, now + as_int(lease), job_id, xx=True)
    return format_score(score), ks.get(body, bytes)


def count_try(ks: Keyspace, key: bytes) -> int:
    tries = ks.incrby(key, 1)
    ks.pexpire(key, 88400 * 1000)
    return tries


def finish_job(ks: Keyspace, K: Args, A: Args, k: int, a: int) -> None:
    for key in (K[k], K[k + 1], K[k + 2]):
        ks.delete(key)
    ks.zrem(K[k + 3], A[a])
    if A[a + 1] != b"":
        ks.set(K[k + 4], A[a + 1], as_int(A[a + 2]))


def retire(ks: Keyspace, K: Args, k: int, active: bytes, ends: bytes | None, seconds: bytes,
            run_id: bytes, writes: bytes, claims: bytes, ends_kept: bytes) -> None:
    ms = as_int(seconds) * 1000
    ks.pexpire(K[k], ms)
    ks.pexpire(K[k + 1], ms)
    ks.pexpire(K[k + 1] + b":children", ms)
    ks.pexpire(K[k + 1] + b":blobs", ms)
    if ks.hget(K[k + 2], b"keep") != b"1":
        for i in range(k + 2, k + 5):
            ks.pexpire(K[i], ms)
        ks.pexpire(K[k + 3] + b":blobs", ms)
        ks.pexpire(K[k + 3] + b":blobs:runs", ms)
        ks.pexpire(K[k + 2] + b":orphans", ms)
        for checkpoint in list(ks.get(K[k + 3], dict) or ()):
            ks.pexpire(writes + checkpoint, ms)
            ks.pexpire(claims + checkpoint, ms)
    if ends:
        ks.push(ends, [run_id], left=False)
        ks.pexpire(ends, as_int(ends_kept) * 1000)
    ks.srem(active, run_id)


def prune(ks: Keyspace, thread: bytes, checkpoints: bytes, history: bytes, depth: int,
           writes: bytes, claims: bytes) -> None:
    items = ks.get(history, deque)
    if items is None or len(items) <= depth:
        return
    old = list(items)[depth:]
    for _ in old:
        items.pop()
    for checkpoint in old:
        ks.hdel(checkpoints, checkpoint)
        for field, value in list((ks.get(writes + checkpoint, dict) or {}).items()):
            if field.startswith(b"child:"):
                ks.make(thread + b":orphans", set).add(value)
        ks.delete(writes + checkpoint)
        ks.delete(claims + checkpoint)
    ks.hincrby(thread, b"pruned", len(old))


EXPECTED = re.compile(rb"^(\d+):(.*)$", re.DOTALL)


COMMIT_FIELDS = (b"version", b"checkpoint_id", b"cancel", b"drain", b"status")


def commit(ks: Keyspace, K: Args, A: Args, k: int, a: int, uncancelled: bool = False,
            held_for: int | None = None) -> tuple[int, bytes | None]:
    match = EXPECTED.match(A[a])
    if match is None:
        return 0, None
    version, checkpoint = match.groups()
    run = K[k]
    got = [ks.hget(run, field) for field in COMMIT_FIELDS]
    if got[0] != version or (got[1] or b"") != checkpoint:
        return 0, None
    if got[2] is not None and (uncancelled or A[a + 5] == b""):
        return 0, None
    if A[a + 5] == b"" and got[3] is not None and got[4] == b"running":
        return 0, None
    sets, status = [(b"version", b"%d" % (int(version) + 1))], got[4]
    i = a + 14
    for _ in range(as_int(A[a + 1])):
        sets.append((A[i], A[i + 1]))
        if A[i] == b"status":
            status = A[i + 1]
        i += 2
    if A[a + 2] != b"":
        sets.append((b"checkpoint_id", A[a + 2]))
    for field, value in sets:
        ks.hset(run, field, value)
    # the (maybe large) input is read only to start the run: its first checkpoint holds it now
    if got[4] == b"pending" and status != b"pending":
        ks.hdel(run, b"input")
    if A[a + 2] != b"":
        ks.hset(K[k + 3], A[a + 2], A[a + 3])
        if A[a + 4] == b"1":
            ks.push(K[k + 4], [A[a + 2]], left=True)
            ks.hset(K[k + 2], b"latest", A[a + 2])
    writes = K[k + 5]
    for _ in range(as_int(A[a + 7])):  # an outcome to run again is kept as a prior, for history
        task, old = A[i], ks.hget(writes, A[i])
        if old is not None:
            n = ks.hincrby(writes, b"priors:" + task, 1)
            ks.hset(writes, b"prior:%s:%d" % (task, n), old)
            ks.hdel(writes, task)
            ks.hincrby(writes, b"__left", 1)
            # the attempt that posted it ended (see `claim`): its claims, by the writes' checkpoint id
            claims = A[a + 10] + writes[len(A[a + 9]):]
            if ks.hget(claims, task) is not None:
                ks.hincrby(claims, task + b":ended", 1)
        i += 1
    for _ in range(as_int(A[a + 8])):
        ks.hset(writes, A[i], A[i + 1])
        i += 2
    for _ in range(as_int(A[a + 12])):
        ks.xadd(K[k + 1], [b"mode", A[i], b"data", A[i + 1]], EVENTS_KEPT)
        i += 2
    if A[a + 2] != b"" and A[a + 4] == b"1" and A[a + 13] != b"":
        prune(ks, K[k + 2], K[k + 3], K[k + 4], as_int(A[a + 13]), A[a + 9], A[a + 10])
    fresh = None
    if i <= len(A) - 1:
        _, fresh = enqueue(ks, K, A, k + 6, i, True, held_for)  # (the new checkpoint's jobs)
    if A[a + 5] != b"":
        if ks.hget(K[k + 2], b"run") == A[a + 6]:
            ks.hdel(K[k + 2], b"run")
        retire(ks, K, k, K[k + 6], at(K, k + 7), A[a + 5], A[a + 6], A[a + 9], A[a + 10],
                A[a + 11])
    return 1, fresh


def claim(ks: Keyspace, claims: bytes, writes: bytes, task: bytes) -> list[Any]:
    posted = [ks.hget(writes, task), ks.hget(writes, b"resume:" + task)]
    if posted[0] is not None:
        return [0]
    attempt = ks.hincrby(claims, task, 1)
    ended = [ks.hget(claims, task + b":ended"), ks.hget(claims, task + b":failures")]
    lost = max(0, attempt - 1 - as_int(ended[0] or b"0"))
    return [attempt, lost, as_int(ended[1] or b"0"), posted[1]]


RUN_FIELDS = (b"version", b"status", b"checkpoint_id", b"cancel", b"drain", b"graph")


def run_of(ks: Keyspace, key: bytes, seen: dict[bytes, list[Any]]) -> list[Any]:
    run = seen.get(key)
    if run is None:
        run = [ks.hget(key, field) for field in RUN_FIELDS]
        seen[key] = run
    return run


def load(ks: Keyspace, K: Args, k: int, checkpoint: bytes, task: bytes, known_version: bytes,
          known_id: bytes, seen: dict[bytes, list[Any]]) -> tuple[list[Any] | None, bytes, bytes]:
    run = K[k]
    version, status, current, cancel_, drain_, _ = run_of(ks, run, seen)
    if version is None:
        return None, b"", b""
    current = current or b""
    cancel = cancel_ is not None
    drain = drain_ is not None
    claimed = None
    if task != b"" and status == b"running" and current == checkpoint and not cancel:
        claimed = claim(ks, K[k + 2], K[k + 3], task)
    fields = None
    if version != known_version or current != known_id or cancel or drain:
        fields = [x for f, v in (ks.get(run, dict) or {}).items()
                  if f != b"input" or status == b"pending" for x in (f, v)]
    blob = None
    if current != b"" and current != known_id:
        blob = ks.hget(K[k + 1], current)
    return [fields, blob, claimed], current, version
