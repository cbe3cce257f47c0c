"""The dead-letter store and the repair of garbled run records (on the in-memory store and on
fakeredis with the real Lua: the same calls run on the real redis-server in tests/test_poison.py)."""

from __future__ import annotations

from collections.abc import Callable

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core import codec
from arqgraph.storage.dead_letters import dead_letters, garbled_fields, repaired, set_aside


async def test_dead_letters_are_listed_newest_first_with_their_raw_bytes(
    protocol_redis: Callable[[], ArqRedis],
) -> None:
    redis = protocol_redis()
    await set_aside(redis, "arqgraph:queue", "a job id that is not UTF-8", b"\xff\xfe", "r.1")
    await set_aside(redis, "arqgraph:inbox:g", "an unreadable notification", b"x" * 10_000)
    newest, oldest = await dead_letters(redis)
    assert (oldest.where, oldest.run_id, oldest.data) == ("arqgraph:queue", "r.1", b"\xff\xfe")
    assert newest.where == "arqgraph:inbox:g" and len(newest.data) == 4096  # (truncated)
    await redis.aclose()


def test_a_garbled_record_is_repaired_into_a_failing_run_that_reads() -> None:
    fields = {b"graph": b"g", b"status": b"\xffnope", b"version": b"x", b"thread_id": b"t",
              b"waiter": b"client-1", b"config": codec.packb(["not", "a", "dict"]),
              b"kind": b"sideways"}
    assert set(garbled_fields(fields)) == {b"status", b"version", b"kind"}
    record = protocol.decode_run("a.b", repaired("a.b", fields, "g", "garbled"), None)
    assert (record.status, record.graph, record.waiter, record.garbled) == (
        "running", "g", "client-1", True)
    assert record.unreadable == "garbled" and record.config == {}  # (the wrong config dropped)
