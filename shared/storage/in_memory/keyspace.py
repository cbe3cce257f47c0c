"""The data of the in-memory store: Redis's types as plain Python objects, one lock.

A hash is a dict, a list a deque, a set a set, a sorted set a dict of scores, a stream a list
of entries; strings, fields and members are bytes, as Redis keeps them. Keys expire as in
Redis: a key past its time is gone when next read, and a sweep every few thousand writes
drops those nobody reads. Each command or script holds the lock while it runs, so it is atomic
as in Redis, also against another thread (a sync node that asks for a drain, the lease keeper
of the embedded worker).
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from redis.exceptions import ResponseError

T = TypeVar("T")
Waiter = "asyncio.Future[None]"
SWEEP_EVERY = 4096  # writes between two sweeps of expired keys


class ZSet(dict[bytes, float]):
    """A sorted set: member -> score, ordered on demand (by score, then member)."""

    def ordered(self) -> list[tuple[bytes, float]]:
        return sorted(self.items(), key=lambda item: (item[1], item[0]))


class Stream:
    """A stream: entry ids as (ms, seq) in order, with each entry's fields; what was added
    and the newest entry deleted, as XINFO STREAM tells them."""

    def __init__(self) -> None:
        self.ids: list[tuple[int, int]] = []
        self.fields: list[list[bytes]] = []
        self.last = (0, 0)
        self.added = 0
        self.max_deleted = (0, 0)

    def add(self, fields: list[bytes]) -> bytes:
        ms = int(time.time() * 1000)
        new = (ms, 0) if ms > self.last[0] else (self.last[0], self.last[1] + 1)
        self.ids.append(new)
        self.fields.append(fields)
        self.last = new
        self.added += 1
        return entry_id(new)

    def after(self, start: tuple[int, int], count: int | None) -> list[list[Any]]:
        first = bisect.bisect_right(self.ids, start)
        last = len(self.ids) if count is None else min(len(self.ids), first + count)
        return [[entry_id(self.ids[i]), list(self.fields[i])] for i in range(first, last)]

    def between(self, low: tuple[int, int], high: tuple[int, int], count: int | None = None,
                reverse: bool = False) -> list[list[Any]]:
        """The entries from `low` to `high`, the first `count` of them (the last, newest
        first, when `reverse`): only those are copied, so that the read of a run's last
        event costs the same however long its stream is."""
        first, last = bisect.bisect_left(self.ids, low), bisect.bisect_right(self.ids, high)
        span = range(last - 1, first - 1, -1) if reverse else range(first, last)
        if count is not None:
            span = span[:max(count, 0)]
        return [[entry_id(self.ids[i]), list(self.fields[i])] for i in span]

    def trim(self, keep: int) -> None:
        """MAXLEN: the last `keep` entries stay (Redis's '~' may keep a few more)."""
        if len(self.ids) > keep:  # (as Redis 7.0: a trim is not a deletion XINFO tells)
            del self.ids[:len(self.ids) - keep], self.fields[:len(self.fields) - keep]

    def delete(self, ids: Iterable[tuple[int, int]]) -> int:
        gone = 0
        for wanted in ids:
            i = bisect.bisect_left(self.ids, wanted)
            if i < len(self.ids) and self.ids[i] == wanted:
                del self.ids[i], self.fields[i]
                self.max_deleted = max(self.max_deleted, wanted)
                gone += 1
        return gone


def entry_id(pair: tuple[int, int]) -> bytes:
    return b"%d-%d" % pair


def parse_id(raw: bytes, high: bool = False) -> tuple[int, int]:
    """A stream id (`ms-seq`, `ms`, `-`, `+`), as XRANGE reads its bounds."""
    if raw == b"-":
        return (0, 0)
    if raw == b"+":
        return (2**63, 2**63)
    ms, _, seq = raw.partition(b"-")
    try:
        return (int(ms), int(seq) if seq else (2**63 if high else 0))
    except ValueError:
        raise ResponseError("ERR Invalid stream ID specified as stream command argument") from None


TYPE_NAMES = {bytes: b"string", dict: b"hash", deque: b"list", set: b"set", ZSet: b"zset",
              Stream: b"stream"}


class Keyspace:
    """One in-memory database: what an embedded run and the checkpointer that keeps its
    threads share."""

    def __init__(self) -> None:
        self.data: dict[bytes, Any] = {}
        self.expires: dict[bytes, float] = {}  # key -> when it expires (ms, wall clock)
        self.lock = threading.RLock()
        self.waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self.channels: dict[bytes, list[Callable[[bytes, bytes], None]]] = {}
        self._writes = 0

    # -- keys --------------------------------------------------------------------------------

    def get(self, key: bytes, kind: type[T]) -> T | None:
        """The value at `key` if it holds a `kind`; None when there is none (or it expired)."""
        value = self.data.get(key)
        if value is None:
            return None
        if key in self.expires and self.expires[key] <= time.time() * 1000:
            self.delete(key)
            return None
        if type(value) is not kind:
            raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
        return value  # type: ignore[no-any-return]

    def make(self, key: bytes, kind: type[T]) -> T:
        """The `kind` at `key`, created empty when there is none."""
        value = self.get(key, kind)
        if value is None:
            value = self.data[key] = kind()
            self._count_write()
        return value

    def exists(self, key: bytes) -> bool:
        if key not in self.data:
            return False
        if key in self.expires and self.expires[key] <= time.time() * 1000:
            self.delete(key)
            return False
        return True

    def delete(self, key: bytes) -> bool:
        self.expires.pop(key, None)
        return self.data.pop(key, None) is not None

    def tidy(self, key: bytes, value: Any) -> None:
        """Drop a collection left empty, as Redis does."""
        if not value and type(value) is not Stream:
            self.delete(key)

    def set(self, key: bytes, value: bytes, px: float | None = None) -> None:
        self.data[key] = value
        if px is None:
            self.expires.pop(key, None)
        else:
            self.expires[key] = time.time() * 1000 + px
        self._count_write()

    def pexpire(self, key: bytes, ms: float) -> bool:
        if not self.exists(key):
            return False
        if ms <= 0:
            self.delete(key)
        else:
            self.expires[key] = time.time() * 1000 + ms
        return True

    def pttl(self, key: bytes) -> int:
        if not self.exists(key):
            return -2
        at = self.expires.get(key)
        return -1 if at is None else max(0, round(at - time.time() * 1000))

    def kind_of(self, key: bytes) -> bytes:
        return TYPE_NAMES[type(self.data[key])] if self.exists(key) else b"none"

    def live_keys(self) -> list[bytes]:
        return [key for key in list(self.data) if self.exists(key)]

    def flush(self) -> None:
        self.data.clear()
        self.expires.clear()

    def _count_write(self) -> None:
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0 and self.expires:
            now = time.time() * 1000
            for key in [k for k, at in self.expires.items() if at <= now]:
                self.delete(key)

    # -- the values scripts read and write -----------------------------------------------

    def hget(self, key: bytes, field: bytes) -> bytes | None:
        h = self.get(key, dict)
        return None if h is None else h.get(field)

    def hset(self, key: bytes, field: bytes, value: bytes) -> int:
        h = self.make(key, dict)
        new = field not in h
        h[field] = value
        return int(new)

    def hdel(self, key: bytes, *fields: bytes) -> int:
        return self._pop(key, dict, fields)

    def _pop(self, key: bytes, kind: type[dict[bytes, Any]], items: Iterable[bytes]) -> int:
        """HDEL and ZREM: drop these fields or members; how many there were."""
        found = self.get(key, kind)
        if found is None:
            return 0
        gone = sum(1 for item in items if found.pop(item, None) is not None)
        self.tidy(key, found)
        return gone

    def hincrby(self, key: bytes, field: bytes, by: int) -> int:
        h = self.make(key, dict)
        value = as_int(h.get(field, b"0"), "hash value") + by
        h[field] = b"%d" % value
        return value

    def zscore(self, key: bytes, member: bytes) -> float | None:
        z = self.get(key, ZSet)
        return None if z is None else z.get(member)

    def zadd(self, key: bytes, score: float, member: bytes, xx: bool = False,
             nx: bool = False) -> int:
        z = self.get(key, ZSet)
        if z is None:
            if xx:
                return 0
            z = self.make(key, ZSet)
        if (xx and member not in z) or (nx and member in z):
            return 0
        new = member not in z
        z[member] = score
        return int(new)

    def zrem(self, key: bytes, *members: bytes) -> int:
        return self._pop(key, ZSet, members)

    def push(self, key: bytes, values: Iterable[bytes], left: bool) -> int:
        items = self.make(key, deque)
        if left:
            items.extendleft(values)
        else:
            items.extend(values)
        self.wake(key)
        return len(items)

    def hsetnx(self, key: bytes, field: bytes, value: bytes) -> int:
        return 0 if self.hget(key, field) is not None else self.hset(key, field, value)

    def incrby(self, key: bytes, by: int) -> int:
        """INCRBY: the key keeps its time to live."""
        value = as_int(self.get(key, bytes) or b"0") + by
        ttl = self.expires.get(key)
        self.set(key, b"%d" % value)
        if ttl is not None:
            self.expires[key] = ttl
        return value

    def srem(self, key: bytes, *members: bytes) -> int:
        found = self.get(key, set)
        if found is None:
            return 0
        gone = sum(1 for m in members if m in found)
        found.difference_update(members)
        self.tidy(key, found)
        return gone

    def llen(self, key: bytes) -> int:
        return len(self.get(key, deque) or ())

    def xadd(self, key: bytes, fields: list[bytes], kept: int | None = None) -> bytes:
        stream = self.make(key, Stream)
        new = stream.add(fields)
        if kept is not None:
            stream.trim(kept)
        self.wake(key)
        return new

    # -- blocking readers and channels ---------------------------------------------------

    def wake(self, key: bytes) -> None:
        """Tell whoever waits on `key` (a blocking pop, a stream read) to look again."""
        waiting = self.waiters.pop(key, None)
        for future in waiting or ():
            loop = future.get_loop()
            if _running_loop() is loop:
                if not future.done():
                    future.set_result(None)
            else:
                loop.call_soon_threadsafe(_settle, future)

    def publish(self, channel: bytes, message: bytes) -> int:
        listeners = list(self.channels.get(channel, ()))
        for listener in listeners:
            listener(channel, message)
        return len(listeners)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def as_int(raw: bytes, what: str = "value") -> int:
    try:
        return int(raw)
    except ValueError:
        raise ResponseError(f"ERR {what} is not an integer or out of range") from None


def as_float(raw: bytes) -> float:
    text = raw.lower()
    if text in (b"+inf", b"inf"):
        return float("inf")
    if text == b"-inf":
        return float("-inf")
    try:
        return float(raw)
    except ValueError:
        raise ResponseError("ERR value is not a valid float") from None


def format_score(score: float) -> bytes:
    """A score as Redis writes it (ZSCORE, WITHSCORES): shortest round-trip form."""
    if score == int(score) and abs(score) < 2**53:
        return b"%d" % int(score)
    if score in (float("inf"), float("-inf")):
        return b"inf" if score > 0 else b"-inf"
    return repr(score).encode()
