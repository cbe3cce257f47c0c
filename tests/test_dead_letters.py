"""The dead-letter store and the repair of garbled run records (on the in-memory store and on
fakeredis with the real Lua: the same calls run on the real redis-server in tests/test_poison.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.core import codec
from arqgraph.core.pregel import TaskOutcome
from arqgraph.orchestrator.service import Orchestrator
from arqgraph.protocol.blobs import BLOB_MIN
from arqgraph.storage.dead_letters import dead_letters, garbled_fields, repaired, set_aside
from tests.test_moves import graph, started


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


@pytest.mark.parametrize("poison", ["garbled outcome", "outcome's value gone", "garbled checkpoint"])
async def test_an_unreadable_outcome_or_checkpoint_fails_its_run_naming_it(
    protocol_redis: Callable[[], ArqRedis], monkeypatch: pytest.MonkeyPatch, poison: str,
) -> None:
    """A task outcome that is not msgpack, or refers to a large value its thread no longer
    has, or a checkpoint that is not msgpack: the run fails once, its end saying why, instead
    of waiting or being read again and again."""
    compiled = graph("poisoned")
    orchestrator, run_id, _ = await started(compiled, monkeypatch, protocol_redis())
    record = await orchestrator.store.load_run(run_id)
    assert record is not None and record.saved is not None
    task, redis = record.saved.checkpoint.tasks[0], orchestrator.store.redis
    writes = protocol.writes_key(record.tag, record.checkpoint_id)
    if poison == "garbled outcome":
        await redis.hset(writes, task.id, b"\xc1\xc1")
        kind, why = "CorruptDataError", "is garbled"
    elif poison == "outcome's value gone":  # (its blob never written)
        large = TaskOutcome(task.id, task.node, {"log": ["x" * 2 * BLOB_MIN]})
        await redis.hset(writes, task.id, protocol.encode_outcome(large, blobs={}))
        kind, why = "CorruptDataError", "gone from its thread's blobs"
    else:
        await redis.hset(protocol.checkpoints_key(record.tag), record.checkpoint_id, b"\xc1")
        kind, why = "SerializationError", "cannot be read here: its checkpoint"
    fresh = Orchestrator(redis, [compiled])  # (nothing kept from before)
    await fresh.advance(run_id)
    assert await fresh.store.status(run_id) == "failed"
    end = await fresh.store.events.end_event(run_id)
    assert end is not None and end["error"]["type"] == kind, end
    assert why in end["error"]["message"], end
    await fresh.advance(run_id)  # (ended: nothing more)
    assert [e[0] async for e in fresh.store.events.read(run_id)].count("end") == 1
