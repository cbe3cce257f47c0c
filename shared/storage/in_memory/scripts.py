"""The protocol's Lua scripts (`arqgraph.protocol.scripts`) as Python, over a `Keyspace`.

Each function here is the script of the same name: read them side by side. Most follow their
script line for line; a script that reads or writes a whole batch of jobs with one command, as
Redis is cheaper that way, has a twin that goes job by job to the same answers.
`K` and `A` are KEYS and ARGV with a None in front, so that the indexes are Lua's. A script
answers what Redis would send back for the Lua value it returns (Lua's false is None, numbers
are ints), and runs under the keyspace's lock, so it is atomic as in Redis. The conformance
tests run the same calls on a real Redis and compare (tests/test_in_memory_store.py).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from arqgraph.protocol import scripts as lua
from arqgraph.protocol.keys import EVENTS_KEPT
from arqgraph.storage.in_memory.commands import zrangebyscore, zremrangebyscore
from arqgraph.storage.in_memory.keyspace import (
    Keyspace,
    ZSet,
    as_float,
    as_int,
    format_score,
)

Args = list[Any]  # KEYS or ARGV: None, then bytes
Script = Callable[[Keyspace, Args, Args], Any]


def _at(values: Args, i: int) -> Any:
    """KEYS[i] or ARGV[i], None past the end (as Lua's nil)."""
    return values[i] if i < len(values) else None


def _enqueue(ks: Keyspace, K: Args, A: Args, k: int, a: int, new: bool = False,
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


def _take(ks: Keyspace, queue: bytes, hold: bytes, body: bytes, job_id: bytes, now: float,
          lease: bytes, holder: bytes) -> tuple[bytes, bytes | None] | None:
    score = ks.zscore(queue, job_id)
    if score is None or score > now or ks.exists(hold):
        return None
    ks.set(hold, holder, as_int(lease))
    ks.zadd(queue, now + as_int(lease), job_id, xx=True)
    return format_score(score), ks.get(body, bytes)


def _count_try(ks: Keyspace, key: bytes) -> int:
    tries = ks.incrby(key, 1)
    ks.pexpire(key, 88400 * 1000)
    return tries


def _finish_job(ks: Keyspace, K: Args, A: Args, k: int, a: int) -> None:
    for key in (K[k], K[k + 1], K[k + 2]):
        ks.delete(key)
    ks.zrem(K[k + 3], A[a])
    if A[a + 1] != b"":
        ks.set(K[k + 4], A[a + 1], as_int(A[a + 2]))


def _retire(ks: Keyspace, K: Args, k: int, active: bytes, ends: bytes | None, seconds: bytes,
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


def _prune(ks: Keyspace, thread: bytes, checkpoints: bytes, history: bytes, depth: int,
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


_EXPECTED = re.compile(rb"^(\d+):(.*)$", re.DOTALL)


_COMMIT_FIELDS = (b"version", b"checkpoint_id", b"cancel", b"drain", b"status")


def _commit(ks: Keyspace, K: Args, A: Args, k: int, a: int, uncancelled: bool = False,
            held_for: int | None = None) -> tuple[int, bytes | None]:
    match = _EXPECTED.match(A[a])
    if match is None:
        return 0, None
    version, checkpoint = match.groups()
    run = K[k]
    got = [ks.hget(run, field) for field in _COMMIT_FIELDS]
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
        _prune(ks, K[k + 2], K[k + 3], K[k + 4], as_int(A[a + 13]), A[a + 9], A[a + 10])
    fresh = None
    if i <= len(A) - 1:
        _, fresh = _enqueue(ks, K, A, k + 6, i, True, held_for)  # (the new checkpoint's jobs)
    if A[a + 5] != b"":
        if ks.hget(K[k + 2], b"run") == A[a + 6]:
            ks.hdel(K[k + 2], b"run")
        _retire(ks, K, k, K[k + 6], _at(K, k + 7), A[a + 5], A[a + 6], A[a + 9], A[a + 10],
                A[a + 11])
    return 1, fresh


def commit_script(ks: Keyspace, K: Args, A: Args) -> int:
    return _commit(ks, K, A, 1, 1)[0]


def create_run(ks: Keyspace, K: Args, A: Args) -> bytes:
    if ks.exists(K[2]):
        return A[1]  # type: ignore[no-any-return]
    busy = ks.hget(K[1], b"run")
    if busy is not None:
        return busy
    thread = [(b"thread_id", A[2]), (b"run", A[1])]
    if A[3] == b"1":
        thread.append((b"keep", b"1"))
    for field, value in thread:
        ks.hset(K[1], field, value)
    for i in range(5, len(A), 2):
        ks.hset(K[2], A[i], A[i + 1])
    ks.make(K[3], set).add(A[1])
    ks.push(K[4], [A[4]], left=True)
    return b""


def _claim(ks: Keyspace, claims: bytes, writes: bytes, task: bytes) -> list[Any]:
    posted = [ks.hget(writes, task), ks.hget(writes, b"resume:" + task)]
    if posted[0] is not None:
        return [0]
    attempt = ks.hincrby(claims, task, 1)
    ended = [ks.hget(claims, task + b":ended"), ks.hget(claims, task + b":failures")]
    lost = max(0, attempt - 1 - as_int(ended[0] or b"0"))
    return [attempt, lost, as_int(ended[1] or b"0"), posted[1]]


_RUN_FIELDS = (b"version", b"status", b"checkpoint_id", b"cancel", b"drain", b"graph")


def _run_of(ks: Keyspace, key: bytes, seen: dict[bytes, list[Any]]) -> list[Any]:
    run = seen.get(key)
    if run is None:
        run = [ks.hget(key, field) for field in _RUN_FIELDS]
        seen[key] = run
    return run


def _load(ks: Keyspace, K: Args, k: int, checkpoint: bytes, task: bytes, known_version: bytes,
          known_id: bytes, seen: dict[bytes, list[Any]]) -> tuple[list[Any] | None, bytes, bytes]:
    run = K[k]
    version, status, current, cancel_, drain_, _ = _run_of(ks, run, seen)
    if version is None:
        return None, b"", b""
    current = current or b""
    cancel = cancel_ is not None
    drain = drain_ is not None
    claimed = None
    if task != b"" and status == b"running" and current == checkpoint and not cancel:
        claimed = _claim(ks, K[k + 2], K[k + 3], task)
    fields = None
    if version != known_version or current != known_id or cancel or drain:
        fields = [x for f, v in (ks.get(run, dict) or {}).items()
                  if f != b"input" or status == b"pending" for x in (f, v)]
    blob = None
    if current != b"" and current != known_id:
        blob = ks.hget(K[k + 1], current)
    return [fields, blob, claimed], current, version


def load_run(ks: Keyspace, K: Args, A: Args) -> list[Any] | None:
    loaded, current, _ = _load(ks, K, 1, A[1], A[2], A[3], A[4], {})
    if loaded is None or current == b"" or current != A[4] or len(A) - 1 == 4:
        return loaded
    outcomes = ks.get(K[4], dict) or {}
    loaded.append([outcomes.get(task) for task in A[5:]])
    return loaded


def post_outcome(ks: Keyspace, K: Args, A: Args) -> Any:
    if A[3] != b"" and ks.hget(K[3], A[1]) != A[3]:
        return -1
    if ks.hsetnx(K[1], A[1], A[2]) == 0:
        return 0
    i, k = 11, 5
    for _ in range(as_int(A[5])):
        ks.xadd(K[2], [b"mode", A[i], b"data", A[i + 1]], EVENTS_KEPT)
        i += 2
    if A[6] == b"1":
        _finish_job(ks, K, A, k, i)
        k, i = k + 5, i + 3
    held, h = None, i
    if A[8] == b"1":
        held = k
        k, i = k + 3, i + 5
    complete = A[10] == b"1"
    if not complete:
        complete = ks.hincrby(K[1], b"__left", -1) <= 0
    if complete:
        if A[7] == b"1":
            done, fresh = _commit(ks, K, A, k, i, True,
                                  as_int(A[h + 2]) if held is not None else None)
            if done == 1:
                if held is None or fresh is None:
                    return 3
                ks.set(K[held + 1], A[h + 4], as_int(A[h + 2]))
                ks.hset(K[held + 2], A[h + 3], b"1")
                return [3, A[h + 1], fresh, 1, [1, 0, 0, None]]
        ks.push(K[4], [A[4]], left=True)
        return 1
    if A[9] == b"1":
        ks.push(K[4], [A[4]], left=True)
        return 1
    return 2


def post_outcomes(ks: Keyspace, K: Args, A: Args) -> list[Any]:
    """The posts one after the other, each as `post_outcome`: the answers the Lua script gives
    (it groups their commands by step, which changes nothing that can be read)."""
    replies, a = [], 5
    for group in range(as_int(A[4])):
        k, note, count = 2 + 4 * group, A[a], as_int(A[a + 1])
        a += 2
        for _ in range(count):
            task, outcome, attempt, flags, job, events = A[a:a + 6]
            pairs = A[a + 6:a + 6 + 2 * as_int(events)]
            keys = [None, K[k], K[k + 1], K[k + 2], K[k + 3]]
            args = [None, task, outcome, attempt, note, events, b"1" if job else b"", b"", b"",
                    b"1" if b"f" in flags else b"", b"1" if b"s" in flags else b"", *pairs]
            if job:  # (its result key is not written: a posted job keeps none)
                keys += [A[1] + job, A[2] + job, A[3] + job, K[1], b""]
                args += [job, b"", b"0"]
            replies.append(post_outcome(ks, keys, args))
            a += 6 + len(pairs)
    return replies


def end_attempt(ks: Keyspace, K: Args, A: Args) -> int:
    if ks.hget(K[1], A[1]) != A[2]:
        return -1
    ks.hincrby(K[1], A[1] + b":ended", 1)
    return ks.hincrby(K[1], A[1] + b":failures", as_int(A[3]))


def _now_ms() -> int:
    return int(time.time() * 1000)


def acquire_slot(ks: Keyspace, K: Args, A: Args) -> int:
    now = _now_ms()
    zremrangebyscore(ks, [K[1], b"-inf", b"%d" % now])
    if ks.zscore(K[1], A[1]) is None and len(ks.get(K[1], ZSet) or ()) >= as_int(A[2]):
        return 0
    ks.zadd(K[1], now + as_int(A[3]), A[1])
    ks.pexpire(K[1], as_int(A[3]) * 2)
    return 1


def renew_slot(ks: Keyspace, K: Args, A: Args) -> int:
    ks.zadd(K[1], _now_ms() + as_int(A[2]), A[1], xx=True)
    ks.pexpire(K[1], as_int(A[2]) * 2)
    return 1


def rate(ks: Keyspace, K: Args, A: Args) -> int:
    now = time.time() * 1000
    interval = as_float(A[2])
    field = b"at:" + A[1]
    last = as_float(ks.hget(K[1], b"last") or b"-1e18")
    at = as_float(ks.hget(K[1], field) or b"-1")
    if at >= 0 and (at < now - interval or now < last + interval - 1):
        at = -1
    if at < 0:
        tat = as_float(ks.hget(K[1], b"tat") or b"0")
        at = max(now, tat, last + interval)
        ks.hset(K[1], b"tat", b"%.3f" % (at + interval))
    ks.pexpire(K[1], 86400000)
    if at <= now:
        ks.hdel(K[1], field)
        ks.hset(K[1], b"last", b"%.3f" % now)
        return 0
    ks.hset(K[1], field, b"%.3f" % at)
    return math.ceil(at - now)


def post_call(ks: Keyspace, K: Args, A: Args) -> int:
    if ks.hget(K[3], A[1]) != A[3]:
        return -1
    if ks.hsetnx(K[1], b"fn:" + A[1], A[2]) == 0:
        return 0
    for i in range(4, len(A), 2):
        ks.xadd(K[2], [b"mode", A[i], b"data", A[i + 1]], EVENTS_KEPT)
    ks.push(K[4], [b"1"], left=True)
    ks.pexpire(K[4], 3600 * 1000)
    return 1


def renew_leases(ks: Keyspace, K: Args, A: Args) -> int:
    for i in range(2, len(K)):
        if ks.pexpire(K[i], as_int(A[1])):
            ks.zadd(K[1], as_float(A[2]), A[i + 1], xx=True)
    return 0


def requeue_job(ks: Keyspace, K: Args, A: Args) -> int:
    holder = ks.get(K[3], bytes)
    if holder is not None and holder != A[4]:
        return 0
    ks.delete(K[3])
    ks.zadd(K[1], as_float(A[2]), A[1], xx=True)
    if A[3] == b"1" and ks.zscore(K[1], A[1]) is not None:
        ks.push(K[2], [A[1]], left=True)
    return 1


def due_jobs(ks: Keyspace, K: Args, A: Args) -> list[Any]:
    queue = ks.get(K[1], ZSet)
    if not queue:
        return [b"", 0]
    first = min(queue.values())
    now = as_float(A[1])
    if first > now:
        return [format_score(first), 0]
    later = [s for s in queue.values() if s > now]
    found: list[Any] = [format_score(min(later)) if later else b"", 0]
    most = as_int(A[3])
    if most <= 0:
        return found
    for job in zrangebyscore(ks, [K[1], b"-inf", A[1], b"LIMIT", b"0", A[2]]):
        if not ks.exists(A[5] + job):
            if found[1] == 0:
                if ks.llen(K[2]) > 0:
                    most = min(most, as_int(A[4]))
                found[1] = most
            found.append(job)
            if len(found) - 2 >= 2 * most:
                break
    return found


def take_jobs(ks: Keyspace, K: Args, A: Args) -> list[Any]:
    taken: list[Any] = []
    now, most = as_float(A[1]), as_int(A[3])
    a = 9 + as_int(A[8])
    limited = set(A[9:a])
    jobs: list[tuple[int, int, bytes, bytes]] = []  # group's key and argument, job id, task
    k = 2
    while a < len(A):
        count = as_int(A[a + 3])
        jobs += [(k, a, A[a + 4 + 2 * i], A[a + 5 + 2 * i]) for i in range(count)]
        k, a = k + 4, a + 4 + 2 * count
    sent: dict[bytes, tuple[bytes, bytes]] = {}  # run key -> (version, checkpoint id) sent
    seen: dict[bytes, list[Any]] = {}  # run key -> its fields
    for k, a, job_id, task in jobs:
        if len(taken) >= 11 * most:
            break
        took = _take(ks, K[1], A[5] + job_id, A[6] + job_id, job_id, now, A[2], A[4])
        if took is None:
            continue
        score, job = took
        started: Any = None
        if job is not None and A[a] != b"":
            run = K[k]
            if task != b"" and limited and (_run_of(ks, run, seen)[5] or b"") in limited:
                task = b""
            known = sent.get(run, (A[a + 1], A[a + 2]))
            started, current, version = _load(ks, K, k, A[a], task, *known, seen)
            if started is not None:
                sent[run] = (version, current)
            else:
                started = 0
        claimed = (started[2] if started else None) or []
        tries = claimed[0] if claimed and claimed[0] > 0 else _count_try(ks, A[7] + job_id)
        loaded = isinstance(started, list)
        taken += [job_id, score, job or b"", tries, 1 if loaded else started,
                  started[0] if loaded else None, started[1] if loaded else None,
                  *(list(claimed) + [None] * 4)[:4]]
    return taken


def finish_job(ks: Keyspace, K: Args, A: Args) -> int:
    holder = ks.get(K[1], bytes)
    if holder is not None and holder != A[4]:
        return 0
    if A[5] == b"fenced" and holder is None:
        return 0
    _finish_job(ks, K, A, 1, 1)
    if A[5] == b"redrive":
        ks.delete(K[5])
    return 1


def retire(ks: Keyspace, K: Args, A: Args) -> int:
    _retire(ks, K, 1, K[6], _at(K, 7), A[1], A[2], A[3], A[4], A[5])
    return 1


def enqueue_jobs(ks: Keyspace, K: Args, A: Args) -> int:
    return _enqueue(ks, K, A, 1, 1)[0]


def claim(ks: Keyspace, K: Args, A: Args) -> list[Any]:
    return _claim(ks, K[1], K[2], A[1])


def collect_blobs(ks: Keyspace, K: Args, A: Args) -> int:
    if ks.hget(K[1], b"run") is not None or ks.hget(K[1], b"latest") != A[1]:
        return -1
    return ks.hdel(K[2], *A[2:]) if len(A) > 2 else 0


def sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


SCRIPTS: dict[str, Script] = {sha(text): python for text, python in [
    (lua.COMMIT_SCRIPT, commit_script), (lua.CREATE_RUN_SCRIPT, create_run),
    (lua.LOAD_RUN_SCRIPT, load_run), (lua.POST_OUTCOME_SCRIPT, post_outcome),
    (lua.POST_OUTCOMES_SCRIPT, post_outcomes),
    (lua.CLAIM_SCRIPT, claim), (lua.END_ATTEMPT_SCRIPT, end_attempt),
    (lua.ACQUIRE_SLOT_SCRIPT, acquire_slot), (lua.RENEW_SLOT_SCRIPT, renew_slot),
    (lua.RATE_SCRIPT, rate), (lua.POST_CALL_SCRIPT, post_call),
    (lua.ENQUEUE_JOBS_SCRIPT, enqueue_jobs), (lua.RENEW_LEASES_SCRIPT, renew_leases),
    (lua.REQUEUE_JOB_SCRIPT, requeue_job), (lua.DUE_JOBS_SCRIPT, due_jobs),
    (lua.TAKE_JOBS_SCRIPT, take_jobs), (lua.FINISH_JOB_SCRIPT, finish_job),
    (lua.RETIRE_SCRIPT, retire), (lua.COLLECT_BLOBS_SCRIPT, collect_blobs),
]}
"""Each script by the SHA1 of its Lua text, as EVALSHA names it."""
