"""The twins of the Lua scripts on runs (`arqgraph.protocol.scripts.runs`)."""

from __future__ import annotations

from typing import Any

from arqgraph.protocol.keys import EVENTS_KEPT
from arqgraph.storage.in_memory.keyspace import Keyspace, as_int
from arqgraph.storage.in_memory.scripts import parts
from arqgraph.storage.in_memory.scripts.parts import Args


def commit_script(ks: Keyspace, K: Args, A: Args) -> int:
    return parts.commit(ks, K, A, 1, 1)[0]


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


def load_run(ks: Keyspace, K: Args, A: Args) -> list[Any] | None:
    loaded, current, _ = parts.load(ks, K, 1, A[1], A[2], A[3], A[4], {})
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
        parts.finish_job(ks, K, A, k, i)
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
            done, fresh = parts.commit(ks, K, A, k, i, True,
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


def retire(ks: Keyspace, K: Args, A: Args) -> int:
    parts.retire(ks, K, 1, K[6], parts.at(K, 7), A[1], A[2], A[3], A[4], A[5])
    return 1


def claim(ks: Keyspace, K: Args, A: Args) -> list[Any]:
    return parts.claim(ks, K[1], K[2], A[1])


def collect_blobs(ks: Keyspace, K: Args, A: Args) -> int:
    if ks.hget(K[1], b"run") is not None or ks.hget(K[1], b"latest") != A[1]:
        return -1
    return ks.hdel(K[2], *A[2:]) if len(A) > 2 else 0
