"""Dead letters: data no process can read, moved aside instead of being read again and again.

Poison (bad bytes, bad msgpack, wrong types, unknown names) in a key or queue arqgraph reads must
neither stop a process nor be retried forever: whoever finds it logs it once, records it here
with where it was and why (the raw bytes too, truncated), takes it out of where it was, and
fails only the run it belongs to. Operators list them with `arqgraph dead-letters` (or
`Client.dead_letters`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping

from redis.asyncio import Redis

from arqgraph import protocol
from arqgraph.core import codec
from arqgraph.errors import CorruptDataError
from arqgraph.protocol import DeadLetter

log = logging.getLogger("arqgraph.poison")


async def set_aside(
    redis: Redis, where: str, why: str, data: bytes | str = b"", run_id: str = ""
) -> None:
    """Log poison found at `where` once and record it as a dead letter. Never raises: a failure
    to record it (Redis away, out of memory) is logged, and the caller goes on."""
    raw = data.encode(errors="surrogateescape") if isinstance(data, str) else data
    log.error("poison at %s%s: %s; set aside in %s", where,
              f" (run {run_id})" if run_id else "", why, protocol.DEAD_LETTERS_KEY)
    letter = DeadLetter(where=where, why=why, run_id=run_id, data=raw, at=time.time())
    try:
        await redis.xadd(protocol.DEAD_LETTERS_KEY,
                         protocol.encode_dead_letter(letter),  # type: ignore[arg-type]
                         maxlen=protocol.DEAD_LETTERS_KEPT, approximate=True)
    except Exception as exc:
        log.warning("could not record the dead letter of %s: %r", where, exc)


async def dead_letters(redis: Redis, count: int = 100) -> list[DeadLetter]:
    """The newest `count` dead letters, newest first."""
    entries = await redis.xrevrange(protocol.DEAD_LETTERS_KEY, count=count)
    return [protocol.decode_dead_letter(entry_id, fields) for entry_id, fields in entries]


async def print_dead_letters(url: str, count: int, connect_timeout: float | None = None) -> int:
    """`arqgraph dead-letters`: the newest dead letters as JSON lines (raw bytes escaped)."""
    from arqgraph.storage.connection import connect

    redis = await connect(url, timeout=connect_timeout, what="client")
    try:
        for letter in await dead_letters(redis, count):
            shown = {**letter.model_dump(), "data": letter.data.decode(errors="backslashreplace")}
            print(json.dumps(shown, ensure_ascii=False), flush=True)
    finally:
        await redis.aclose()
    return 0


async def readable_ids(
    redis: Redis, raw_ids: Iterable[bytes], key: str, popped: bool = False
) -> list[str]:
    """The run ids among the members of the set `key` (or ids `popped` from the list `key`);
    the others (not UTF-8, not a run id) are set aside and taken out of the set."""
    run_ids: list[str] = []
    for raw in raw_ids:
        try:
            run_id = raw.decode()
            protocol.tag_of(run_id)
        except ValueError as exc:  # (UnicodeDecodeError is one)
            if popped or await redis.srem(key, raw):  # type: ignore[misc]  # (once)
                await set_aside(redis, key, f"not a run id: {exc}", raw)
            continue
        run_ids.append(run_id)
    return run_ids


_NUMBERS = ("version", "first_step", "retention")
_PACKED = ("input", "resume", "config", "context", "error")
_KEPT = (b"thread_id", b"keep", b"waiter", b"cancel")  # what a failing run still needs


def garbled_fields(fields: Mapping[bytes, bytes]) -> dict[bytes, str]:
    """The fields of a run record that cannot be read, and why each."""
    garbled: dict[bytes, str] = {}
    for name, value in fields.items():
        field = name.decode(errors="backslashreplace")
        try:
            text = value.decode()
            if field in _NUMBERS:
                int(text)
            elif field == "status" and text not in (*protocol.FINAL_STATUSES, "pending", "running"):
                raise ValueError(f"unknown status {text!r}")
            elif field == "kind" and text not in ("input", "resume", "update"):
                raise ValueError(f"unknown kind {text!r}")
        except UnicodeDecodeError:
            if field not in _PACKED:
                garbled[name] = "not UTF-8"
        except ValueError as exc:
            garbled[name] = str(exc)
    return garbled


def repaired(
    run_id: str, fields: Mapping[bytes, bytes], graph: str, why: str
) -> dict[bytes, bytes]:
    """A garbled run record made readable, as a failing run (`garbled` says why): its garbled
    fields dropped, those a run needs set afresh (a new version: no stale commit matches it);
    if it is still unreadable, only what its failure needs is kept."""
    needed = {b"graph": graph.encode(), b"status": b"running",
              b"version": str(time.time_ns()).encode(), b"thread_id": run_id.encode()}
    garbled = garbled_fields(fields)
    record = {k: v for k, v in fields.items() if k not in garbled}
    record.update({k: v for k, v in needed.items() if k not in record or k in garbled})
    record[b"garbled"] = why.encode()
    try:
        protocol.decode_run(run_id, record, None)
    except CorruptDataError:
        record = {**needed, **{k: v for k, v in record.items() if k in _KEPT},
                  b"garbled": why.encode()}
        protocol.decode_run(run_id, record, None)  # (only plain fields left: it reads)
    return record


async def set_aside_run(redis: Redis, run_id: str, graph: str, why: str) -> None:
    """Set aside a run record that cannot be read (the orchestrator of `graph` found it): the
    record is dead-lettered, and put back readable (`repaired`) so that the run fails the usual
    way, visibly, with `why` (its waiter told, its thread freed)."""
    key = protocol.run_key(run_id)
    fields: dict[bytes, bytes] = await redis.hgetall(key)  # type: ignore[misc]
    if not fields:
        return
    garbled = garbled_fields(fields)
    named = "; ".join(f"{n.decode(errors='backslashreplace')}: {w}" for n, w in garbled.items())
    why = f"{why} ({named})" if named else why
    await set_aside(redis, key, why, codec.packb({k.decode(errors="backslashreplace"): v
                                                  for k, v in fields.items()}), run_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping=repaired(run_id, fields, graph, why))  # type: ignore[arg-type]
        await pipe.execute()
