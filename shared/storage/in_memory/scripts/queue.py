"""The twins of the Lua scripts on the job queue and the node limits
(`arqgraph.protocol.scripts.queue`)."""

from __future__ import annotations

import math
import time
from typing import Any

from arqgraph.storage.in_memory.commands import zrangebyscore, zremrangebyscore
from arqgraph.storage.in_memory.keyspace import Keyspace, ZSet, as_float, as_int, format_score
from arqgraph.storage.in_memory.scripts import parts
from arqgraph.storage.in_memory.scripts.parts import Args


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
        took = parts.take(ks, K[1], A[5] + job_id, A[6] + job_id, job_id, now, A[2], A[4])
        if took is None:
            continue
        score, job = took
        started: Any = None
        if job is not None and A[a] != b"":
            run = K[k]
            if task != b"" and limited and (parts.run_of(ks, run, seen)[5] or b"") in limited:
                task = b""
            known = sent.get(run, (A[a + 1], A[a + 2]))
            started, current, version = parts.load(ks, K, k, A[a], task, *known, seen)
            if started is not None:
                sent[run] = (version, current)
            else:
                started = 0
        claimed = (started[2] if started else None) or []
        tries = claimed[0] if claimed and claimed[0] > 0 else parts.count_try(ks, A[7] + job_id)
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
    parts.finish_job(ks, K, A, 1, 1)
    if A[5] == b"redrive":
        ks.delete(K[5])
    return 1


def enqueue_jobs(ks: Keyspace, K: Args, A: Args) -> int:
    return parts.enqueue(ks, K, A, 1, 1)[0]
