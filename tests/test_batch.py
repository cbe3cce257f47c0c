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


GATHERED = """
local n, out = tonumber(ARGV[1]), {}
local k, a = 1, 2 + 2 * n
for p = 1, n do
  redis.call('INCR', KEYS[k])
  out[p] = 'many:' .. ARGV[a]
  k, a = k + tonumber(ARGV[2 * p]), a + tonumber(ARGV[2 * p + 1])
end
redis.call('INCR', 'gathered')
return out
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


async def test_calls_of_a_gathered_script_go_as_one_call_of_the_script_that_takes_them_all(
    client: redis.asyncio.Redis,
) -> None:
    """What the posts of a fan-out's outcomes do (RunStore.post_outcome): the calls made in one
    turn of the loop are one call of the script that takes many, each caller with its reply;
    a lone call is a call of the script that takes one."""
    post = Batch(client).gathered(GATHERED, ECHO)
    replies = await asyncio.gather(*(post([f"g{i}", "other"], [f"v{i}", "x"]) for i in range(40)))
    assert replies == [f"many:v{i}".encode() for i in range(40)]
    assert await client.get("gathered") == b"1"
    assert [int(v) for v in await client.mget([f"g{i}" for i in range(40)])] == [1] * 40
    assert await post(["lone"], ["a"]) == b"a"
    assert await client.get("gathered") == b"1" and await client.get("lone") == b"1"
    await client.script_flush()  # as after a restart of redis-server: loaded again
    assert await asyncio.gather(post(["h1"], ["1"]), post(["h2"], ["2"])) == [b"many:1",
                                                                             b"many:2"]
    assert await client.get("gathered") == b"2"


async def test_a_gathered_call_that_cannot_be_packed_fails_its_callers_not_hangs(
    client: redis.asyncio.Redis,
) -> None:
    def broken(calls: object) -> None:
        raise ValueError("no packing")

    post = Batch(client).gathered(GATHERED, ECHO, broken)  # type: ignore[arg-type]
    results = await asyncio.wait_for(asyncio.gather(
        post(["a"], ["1"]), post(["b"], ["2"]), return_exceptions=True), 5)
    assert all(isinstance(r, ValueError) for r in results)

    alone = Batch(client).gathered(GATHERED, ECHO, lambda calls: None)
    assert await asyncio.gather(alone(["c"], ["3"]), alone(["d"], ["4"])) == [b"3", b"4"]
    assert await client.get("gathered") is None  # (each went as a call of its own)
