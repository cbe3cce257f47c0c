"""The Redis commands arqgraph and arq send, answered from a `Keyspace`.

Each takes the command's arguments as bytes (as redis-py sends them) and answers what Redis
would put on the wire (bytes, integers, lists, None), for redis-py's own reply parsers to
shape. The blocking commands (BLMPOP, BRPOP, XREAD BLOCK) try once here; the client waits and
tries again when a key they wait on is written. A command arqgraph does not send is refused
with a clear error: this is not a general Redis.
"""

from __future__ import annotations

import fnmatch
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.exceptions import ResponseError

from arqgraph.storage.in_memory.keyspace import (
    Keyspace,
    Stream,
    ZSet,
    as_float,
    as_int,
    entry_id,
    format_score,
    parse_id,
)

OK = b"OK"
Command = Callable[[Keyspace, list[bytes]], Any]


def _pairs(args: list[bytes]) -> list[tuple[bytes, bytes]]:
    if len(args) % 2:
        raise ResponseError("ERR wrong number of arguments")
    return list(zip(args[::2], args[1::2], strict=True))


# -- keys and strings --------------------------------------------------------------------------

def _get(ks: Keyspace, a: list[bytes]) -> Any:
    return ks.get(a[0], bytes)


def _set(ks: Keyspace, a: list[bytes]) -> Any:
    key, value, px, nx, xx, i = a[0], a[1], None, False, False, 2
    while i < len(a):
        word = a[i].upper()
        if word in (b"PX", b"EX"):
            px = as_int(a[i + 1]) * (1000 if word == b"EX" else 1)
            i += 2
            continue
        nx, xx = nx or word == b"NX", xx or word == b"XX"
        i += 1
    if (nx and ks.exists(key)) or (xx and not ks.exists(key)):
        return None
    ks.set(key, value, px)
    return OK


def _setex(ms: int) -> Command:
    def setex(ks: Keyspace, a: list[bytes]) -> Any:
        ks.set(a[0], a[2], as_int(a[1]) * ms)
        return OK
    return setex


def _incrby(ks: Keyspace, a: list[bytes]) -> Any:
    return ks.incrby(a[0], as_int(a[1]) if len(a) > 1 else 1)


def _expire(ms: int) -> Command:
    return lambda ks, a: int(ks.pexpire(a[0], as_int(a[1]) * ms))


def _ttl(ks: Keyspace, a: list[bytes]) -> Any:
    left = ks.pttl(a[0])
    return left if left < 0 else (left + 500) // 1000


def _persist(ks: Keyspace, a: list[bytes]) -> Any:
    return int(ks.exists(a[0]) and ks.expires.pop(a[0], None) is not None)


def _keys(ks: Keyspace, a: list[bytes]) -> Any:
    return [k for k in ks.live_keys() if fnmatch.fnmatchcase(k.decode("latin-1"),
                                                              a[0].decode("latin-1"))]


def _scan(ks: Keyspace, a: list[bytes]) -> Any:
    """One pass answers all: the cursor comes back 0."""
    pattern = b"*"
    for i in range(1, len(a) - 1):
        if a[i].upper() == b"MATCH":
            pattern = a[i + 1]
    return [b"0", _keys(ks, [pattern])]


def _flush(ks: Keyspace, a: list[bytes]) -> Any:
    ks.flush()
    return OK


def _time(ks: Keyspace, a: list[bytes]) -> Any:
    now = time.time()
    return [b"%d" % int(now), b"%d" % int((now % 1) * 1_000_000)]


# -- hashes ------------------------------------------------------------------------------------

def _hset(ks: Keyspace, a: list[bytes]) -> Any:
    return sum(ks.hset(a[0], f, v) for f, v in _pairs(a[1:]))


def _hgetall(ks: Keyspace, a: list[bytes]) -> Any:
    return [x for pair in (ks.get(a[0], dict) or {}).items() for x in pair]


def _hmget(ks: Keyspace, a: list[bytes]) -> Any:
    h = ks.get(a[0], dict) or {}
    return [h.get(f) for f in a[1:]]


# -- lists -------------------------------------------------------------------------------------

def _lrange(ks: Keyspace, a: list[bytes]) -> Any:
    items = list(ks.get(a[0], deque) or ())
    start, stop = as_int(a[1]), as_int(a[2])
    n = len(items)
    start, stop = max(start + n if start < 0 else start, 0), stop + n if stop < 0 else stop
    return items[start:stop + 1]


def _lindex(ks: Keyspace, a: list[bytes]) -> Any:
    items = ks.get(a[0], deque) or deque()
    i = as_int(a[1])
    return items[i] if -len(items) <= i < len(items) else None


def _pop(ks: Keyspace, key: bytes, left: bool, count: int) -> list[bytes] | None:
    items = ks.get(key, deque)
    if not items:
        return None
    taken = [items.popleft() if left else items.pop() for _ in range(min(count, len(items)))]
    ks.tidy(key, items)
    return taken


def _pop_one(ks: Keyspace, key: bytes, left: bool) -> bytes | None:
    taken = _pop(ks, key, left, 1)
    return taken[0] if taken else None


def lmpop(ks: Keyspace, a: list[bytes]) -> Any:
    """LMPOP/BLMPOP's arguments from numkeys: numkeys, keys, LEFT|RIGHT [COUNT n]."""
    n = as_int(a[0])
    keys, rest = a[1:1 + n], a[1 + n:]
    left = rest[0].upper() == b"LEFT"
    count = as_int(rest[2]) if len(rest) > 2 else 1
    for key in keys:
        taken = _pop(ks, key, left, count)
        if taken:
            return [key, taken]
    return None


# -- sets and sorted sets ----------------------------------------------------------------------

def _sadd(ks: Keyspace, a: list[bytes]) -> Any:
    members = ks.make(a[0], set)
    before = len(members)
    members.update(a[1:])
    return len(members) - before


def _zadd(ks: Keyspace, a: list[bytes]) -> Any:
    i, xx, nx = 1, False, False
    while a[i].upper() in (b"XX", b"NX", b"CH", b"GT", b"LT"):
        xx, nx = xx or a[i].upper() == b"XX", nx or a[i].upper() == b"NX"
        i += 1
    return sum(ks.zadd(a[0], as_float(s), m, xx=xx, nx=nx) for s, m in _pairs(a[i:]))


def _zscore(ks: Keyspace, a: list[bytes]) -> Any:
    score = ks.zscore(a[0], a[1])
    return None if score is None else format_score(score)


def score_bound(raw: bytes) -> tuple[float, bool]:
    """A ZRANGEBYSCORE bound: its score, and whether it excludes itself (`(5`)."""
    return (as_float(raw[1:]), True) if raw.startswith(b"(") else (as_float(raw), False)


def in_range(score: float, low: tuple[float, bool], high: tuple[float, bool]) -> bool:
    return (score > low[0] if low[1] else score >= low[0]) and \
        (score < high[0] if high[1] else score <= high[0])


def zrangebyscore(ks: Keyspace, a: list[bytes]) -> Any:
    low, high = score_bound(a[1]), score_bound(a[2])
    scores, offset, count, i = False, 0, -1, 3
    while i < len(a):
        if a[i].upper() == b"WITHSCORES":
            scores, i = True, i + 1
        elif a[i].upper() == b"LIMIT":
            offset, count, i = as_int(a[i + 1]), as_int(a[i + 2]), i + 3
        else:
            raise ResponseError("ERR syntax error")
    found = [(m, s) for m, s in (ks.get(a[0], ZSet) or ZSet()).ordered() if in_range(s, low, high)]
    found = found[offset:] if count < 0 else found[offset:offset + count]
    return _with_scores(found, scores)


def zrange(ks: Keyspace, a: list[bytes]) -> Any:
    if any(w.upper() in (b"BYSCORE", b"BYLEX", b"REV") for w in a[3:]):
        raise ResponseError("ERR ZRANGE is answered by rank only here")
    ordered = (ks.get(a[0], ZSet) or ZSet()).ordered()
    n = len(ordered)
    start, stop = as_int(a[1]), as_int(a[2])
    start, stop = max(start + n if start < 0 else start, 0), stop + n if stop < 0 else stop
    return _with_scores(ordered[start:stop + 1], any(w.upper() == b"WITHSCORES" for w in a[3:]))


def _with_scores(found: list[tuple[bytes, float]], scores: bool) -> list[bytes]:
    if not scores:
        return [m for m, _ in found]
    return [x for m, s in found for x in (m, format_score(s))]


def _zcount(ks: Keyspace, a: list[bytes]) -> Any:
    low, high = score_bound(a[1]), score_bound(a[2])
    return sum(1 for s in (ks.get(a[0], ZSet) or {}).values() if in_range(s, low, high))


def zremrangebyscore(ks: Keyspace, a: list[bytes]) -> Any:
    z = ks.get(a[0], ZSet)
    if z is None:
        return 0
    low, high = score_bound(a[1]), score_bound(a[2])
    gone = [m for m, s in z.items() if in_range(s, low, high)]
    for m in gone:
        del z[m]
    ks.tidy(a[0], z)
    return len(gone)


# -- streams -----------------------------------------------------------------------------------

def _xadd(ks: Keyspace, a: list[bytes]) -> Any:
    key, i, keep = a[0], 1, None
    if a[i].upper() == b"NOMKSTREAM":
        raise ResponseError("ERR NOMKSTREAM is not answered here")
    if a[i].upper() == b"MAXLEN":
        i += 1
        if a[i] in (b"~", b"="):
            i += 1
        keep, i = as_int(a[i]), i + 1
    if a[i] != b"*":
        raise ResponseError("ERR only '*' ids are answered here")
    return ks.xadd(key, a[i + 1:], keep)


def _xread(ks: Keyspace, a: list[bytes]) -> Any:
    """XREAD [COUNT n] STREAMS keys ids, without BLOCK (the client waits and tries again)."""
    count = as_int(a[1]) if a[0].upper() == b"COUNT" else None
    rest = a[next(i for i, word in enumerate(a) if word.upper() == b"STREAMS") + 1:]
    found = []
    for key, last in zip(rest[:len(rest) // 2], rest[len(rest) // 2:], strict=True):
        stream = ks.get(key, Stream)
        if stream is None:
            continue
        entries = stream.after(stream.last if last == b"$" else parse_id(last), count)
        if entries:
            found.append([key, entries])
    return found or None


def _xrange(reverse: bool) -> Command:
    def xrange(ks: Keyspace, a: list[bytes]) -> Any:
        stream = ks.get(a[0], Stream)
        low, high = (a[2], a[1]) if reverse else (a[1], a[2])
        count = as_int(a[4]) if len(a) > 4 and a[3].upper() == b"COUNT" else None
        return [] if stream is None else stream.between(
            parse_id(low), parse_id(high, True), count, reverse)
    return xrange


def _xtrim(ks: Keyspace, a: list[bytes]) -> Any:
    """XTRIM key MAXLEN [~|=] n."""
    if a[1].upper() != b"MAXLEN":
        raise ResponseError("ERR only XTRIM MAXLEN is answered here")
    stream = ks.get(a[0], Stream)
    if stream is None:
        return 0
    before = len(stream.ids)
    stream.trim(as_int(a[3] if a[2] in (b"~", b"=") else a[2]))
    return before - len(stream.ids)


def _xinfo(ks: Keyspace, a: list[bytes]) -> Any:
    """XINFO STREAM key: what readers ask of a stream (no consumer groups here)."""
    if a[0].upper() != b"STREAM":
        raise ResponseError(f"ERR XINFO {a[0].decode()} is not answered here")
    stream = ks.get(a[1], Stream)
    if stream is None:
        raise ResponseError("ERR no such key")
    first = [entry_id(stream.ids[0]), list(stream.fields[0])] if stream.ids else None
    last = [entry_id(stream.ids[-1]), list(stream.fields[-1])] if stream.ids else None
    return [b"length", len(stream.ids), b"last-generated-id", entry_id(stream.last),
            b"max-deleted-entry-id", entry_id(stream.max_deleted),
            b"entries-added", stream.added,
            b"recorded-first-entry-id", entry_id(stream.ids[0]) if stream.ids else b"0-0",
            b"groups", 0,
            b"first-entry", first, b"last-entry", last]


def _xlen(ks: Keyspace, a: list[bytes]) -> Any:
    stream = ks.get(a[0], Stream)
    return 0 if stream is None else len(stream.ids)


def _xdel(ks: Keyspace, a: list[bytes]) -> Any:
    stream = ks.get(a[0], Stream)
    return 0 if stream is None else stream.delete(parse_id(i) for i in a[1:])


COMMANDS: dict[str, Command] = {
    "GET": _get, "SET": _set, "PSETEX": _setex(1), "SETEX": _setex(1000),
    "MGET": lambda ks, a: [ks.get(k, bytes) for k in a],
    "INCR": _incrby, "INCRBY": _incrby,
    "DEL": lambda ks, a: sum(1 for k in a if ks.exists(k) and ks.delete(k)),
    "UNLINK": lambda ks, a: sum(1 for k in a if ks.exists(k) and ks.delete(k)),
    "EXISTS": lambda ks, a: sum(1 for k in a if ks.exists(k)),
    "EXPIRE": _expire(1000), "PEXPIRE": _expire(1), "TTL": _ttl,
    "PTTL": lambda ks, a: ks.pttl(a[0]), "PERSIST": _persist,
    "TYPE": lambda ks, a: ks.kind_of(a[0]),
    "KEYS": _keys, "SCAN": _scan, "DBSIZE": lambda ks, a: len(ks.live_keys()),
    "FLUSHDB": _flush, "FLUSHALL": _flush, "PING": lambda ks, a: b"PONG", "TIME": _time,
    "HSET": _hset, "HSETNX": lambda ks, a: ks.hsetnx(a[0], a[1], a[2]),
    "HGET": lambda ks, a: ks.hget(a[0], a[1]), "HGETALL": _hgetall, "HMGET": _hmget,
    "HDEL": lambda ks, a: ks.hdel(a[0], *a[1:]),
    "HEXISTS": lambda ks, a: int(ks.hget(a[0], a[1]) is not None),
    "HINCRBY": lambda ks, a: ks.hincrby(a[0], a[1], as_int(a[2])),
    "HKEYS": lambda ks, a: list(ks.get(a[0], dict) or ()),
    "HVALS": lambda ks, a: list((ks.get(a[0], dict) or {}).values()),
    "HLEN": lambda ks, a: len(ks.get(a[0], dict) or ()),
    "HSTRLEN": lambda ks, a: len(ks.hget(a[0], a[1]) or b""),
    "LPUSH": lambda ks, a: ks.push(a[0], a[1:], left=True),
    "RPUSH": lambda ks, a: ks.push(a[0], a[1:], left=False),
    "LPOP": lambda ks, a: _pop_one(ks, a[0], True), "RPOP": lambda ks, a: _pop_one(ks, a[0], False),
    "LLEN": lambda ks, a: ks.llen(a[0]), "LRANGE": _lrange,
    "LINDEX": _lindex, "LMPOP": lmpop,
    "SADD": _sadd, "SREM": lambda ks, a: ks.srem(a[0], *a[1:]),
    "SMEMBERS": lambda ks, a: list(ks.get(a[0], set) or ()),
    "SISMEMBER": lambda ks, a: int(a[1] in (ks.get(a[0], set) or ())),
    "SCARD": lambda ks, a: len(ks.get(a[0], set) or ()),
    "SUNION": lambda ks, a: list(set().union(*(ks.get(k, set) or () for k in a))),
    "ZADD": _zadd, "ZSCORE": _zscore, "ZREM": lambda ks, a: ks.zrem(a[0], *a[1:]),
    "ZCARD": lambda ks, a: len(ks.get(a[0], ZSet) or ()), "ZCOUNT": _zcount,
    "ZRANGE": zrange, "ZRANGEBYSCORE": zrangebyscore, "ZREMRANGEBYSCORE": zremrangebyscore,
    "XADD": _xadd, "XRANGE": _xrange(False), "XREVRANGE": _xrange(True), "XLEN": _xlen,
    "XDEL": _xdel, "XREAD": _xread, "XINFO": _xinfo, "XTRIM": _xtrim,
    "PUBLISH": lambda ks, a: ks.publish(a[0], a[1]),
}
