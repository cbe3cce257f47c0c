"""arqgraph.storage.batch: script calls made at once share one round trip, each caller gets its own
reply or error, and a Redis that lost its scripts is handled. On a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.exceptions import ResponseError

from arqgraph.storage.batch import Batch
from tests.conftest import RedisServer

ECHO = """
if ARGV[1] == 'boom' then return redis.error_reply('boom for ' .. KEYS[1]) end
redis.call('INCR', KEYS[1])
return ARGV[1]
"""


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    r = redis.asyncio.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/15")
    await r.flushdb()
    yield r
    await r.aclose()


async def test_calls_made_at_once_share_a_round_trip_and_get_their_own_replies(
    client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = Batch(client)
    script = batch.script(ECHO)
    await script(["warm"], ["x"])  # loaded once, as RunStore's scripts are in use
    pipelines = 0
    make = client.pipeline

    def counted(*args: object, **kwargs: object) -> object:
        nonlocal pipelines
        pipelines += 1
        return make(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "pipeline", counted)
    replies = await asyncio.gather(*(script([f"k{i}"], [f"v{i}"]) for i in range(50)))
    assert replies == [f"v{i}".encode() for i in range(50)]
    assert pipelines == 1
    assert [int(v) for v in await client.mget([f"k{i}" for i in range(50)])] == [1] * 50
    assert await script(["alone"], ["a"]) == b"a"  # a lone call: no pipeline
    assert pipelines == 1
    got = await asyncio.gather(*(batch.command("GET", f"k{i}") for i in range(10)),
                               batch.command("HGET", "no-such-hash", "f"))
    assert got == [b"1"] * 10 + [None] and pipelines == 2  # commands batch the same way


async def test_an_error_reaches_only_its_caller(client: redis.asyncio.Redis) -> None:
    script = Batch(client).script(ECHO)
    results = await asyncio.gather(
        script(["a"], ["1"]), script(["b"], ["boom"]), script(["c"], ["3"]),
        return_exceptions=True,
    )
    assert results[0] == b"1" and results[2] == b"3"
    assert isinstance(results[1], ResponseError) and "boom for b" in str(results[1])


async def test_scripts_lost_by_redis_are_loaded_again(client: redis.asyncio.Redis) -> None:
    script = Batch(client).script(ECHO)
    assert await asyncio.gather(*(script([f"x{i}"], [str(i)]) for i in range(5))) == [
        str(i).encode() for i in range(5)]
    await client.script_flush()  # as after a restart of redis-server
    assert await asyncio.gather(*(script([f"y{i}"], [str(i)]) for i in range(5))) == [
        str(i).encode() for i in range(5)]
    assert await client.get("y4") == b"1"


async def test_a_cancelled_caller_leaves_the_others_their_replies(
    client: redis.asyncio.Redis,
) -> None:
    script = Batch(client).script(ECHO)
    calls = [asyncio.ensure_future(script([f"z{i}"], [str(i)])) for i in range(4)]
    calls[1].cancel()
    done = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [done[0], done[2], done[3]] == [b"0", b"2", b"3"]
