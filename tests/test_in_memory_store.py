"""The in-memory store against a real Redis: the same commands, the same answers.

The embedded default runs on `arqgraph.storage.in_memory`, where each Lua script of the
protocol is a Python twin. Here real programs run embedded while every command the store
answers is recorded; the record is then replayed, in order, on a real redis-server with the
Lua scripts themselves, and each answer and the data left at the end must be the same. The
unit tests of the Redis layer (test_pickup, test_sweep, test_moves, ...) run on both the
in-memory store and fakeredis with the real Lua (the `protocol_redis` fixture); the cluster tests
run the Lua on a real Redis.
"""

from __future__ import annotations

import asyncio
import operator
import re
from typing import Annotated, Any, TypedDict

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from arqgraph import embedded, protocol
from arqgraph.checkpoint.memory import InMemorySaver
from arqgraph.embedded import EmbeddedCluster
from arqgraph.func import entrypoint, task
from arqgraph.graph import END, START, StateGraph
from arqgraph.protocol import scripts as lua
from arqgraph.storage.connection import job_deserializer, job_serializer
from arqgraph.storage.in_memory import Keyspace, MemoryRedis
from arqgraph.storage.in_memory.scripts import sha
from arqgraph.storage.posts import pack_posts
from arqgraph.types import Command, RetryPolicy, Send, interrupt
from tests.test_history_depth import blob_id, loop, value

LIMIT = 30
NAMES = {sha(text): name for name, text in vars(lua).items() if name.endswith("_SCRIPT")}
LUA = {sha(text): text for name, text in vars(lua).items() if name.endswith("_SCRIPT")}
CLOCKED = {sha(lua.RATE_SCRIPT)}  # answers depend on when they run: run, not compared
NOT_COMPARED = ("PTTL", "TTL", "XINFO", "PUBLISH")  # (times; XINFO's layout of Redis's
# internals; PUBLISH tells how many listen, and none listens on the replay's server)
UNORDERED = ("HKEYS", "SMEMBERS")  # (a hash of large values or a set: in no order)
ENTRY_ID = re.compile(rb"^\d+-\d+$")
CLOCKED_KEY = re.compile(rb":rate:|:slots:|^slots$")


class Recorder(MemoryRedis):
    """The in-memory store, keeping every command it answers with its answer."""

    def __init__(self, keyspace: Keyspace | None, record: list[tuple[str, list[bytes], Any]]) -> None:
        super().__init__(keyspace, job_serializer=job_serializer, job_deserializer=job_deserializer)
        self.record = record

    def _run(self, name: str, raw: list[bytes]) -> Any:
        try:
            reply = super()._run(name, raw)
        except ResponseError as exc:
            reply = exc
        self.record.append((name, list(raw), reply))
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def for_another_loop(self) -> MemoryRedis:
        return Recorder(self.keyspace, self.record)


class Chain(TypedDict):
    items: Annotated[list[int], operator.add]
    total: int


def _fan_out(state: Chain) -> list[Send]:
    return [Send("square", {"items": [n], "total": 0}) for n in range(1, 6)]


async def _square(state: Chain) -> dict[str, Any]:
    return {"items": [state["items"][0] ** 2]}


async def _sum(state: Chain) -> dict[str, Any]:
    return {"total": sum(state["items"])}


def _fanout_graph() -> Any:
    builder = StateGraph(Chain)
    builder.add_node("start", lambda state: {"items": []})
    builder.add_node("square", _square, concurrency=2)
    builder.add_node("sum", _sum, rate_limit="1000/s")
    builder.add_edge(START, "start")
    builder.add_conditional_edges("start", _fan_out, ["square"])
    builder.add_edge("square", "sum")
    builder.add_edge("sum", END)
    return builder.compile()


failures: list[int] = []


def _approve(state: Chain) -> dict[str, Any]:
    if len(failures) < 1:
        failures.append(1)
        raise ConnectionError("flaky once")
    answer = interrupt({"question": "ok?", "total": state["total"]})
    return {"total": state["total"] + (1 if answer == "yes" else -1)}


def _interrupt_graph() -> Any:
    builder = StateGraph(Chain)
    builder.add_node("count", lambda state: {"total": len(state["items"])})
    builder.add_node("approve", _approve, retry_policy=RetryPolicy(initial_interval=0.01,
                                                                    jitter=False))
    builder.add_edge(START, "count")
    builder.add_edge("count", "approve")
    builder.add_edge("approve", END)
    return builder.compile(checkpointer=InMemorySaver())


@task
async def _double(n: int) -> int:
    return 2 * n


@entrypoint()
async def _doubled(numbers: list[int]) -> list[int]:
    return list(await asyncio.gather(*(_double(n) for n in numbers)))


async def _programs() -> None:
    """Programs that between them call every script of the protocol."""
    assert (await _fanout_graph().ainvoke({"items": [], "total": 0}))["total"] == 55
    streamed = [c async for c in _fanout_graph().astream({"items": [], "total": 0})]
    assert streamed[-1] == {"sum": {"total": 55}}
    failures.clear()
    graph = _interrupt_graph()
    config = {"configurable": {"thread_id": "t1"}}
    stopped = await graph.ainvoke({"items": [1, 2], "total": 0}, config)
    assert stopped["__interrupt__"][0].value == {"question": "ok?", "total": 2}
    assert (await graph.ainvoke(Command(resume="yes"), config))["total"] == 3
    assert len([s async for s in graph.aget_state_history(config)]) >= 4
    await graph.aupdate_state(config, {"total": 10})
    assert (await graph.aget_state(config)).values["total"] == 10
    assert await _doubled.ainvoke([1, 2, 3]) == [2, 4, 6]


async def _rarer_scripts(redis: MemoryRedis) -> None:
    """The scripts short programs do not reach: leases renewed (a node running for a third
    of its lease; the embedded worker's are long), a finished run retired after an upgrade."""
    assert await redis.eval(lua.ACQUIRE_SLOT_SCRIPT, 1, "slots", "job-a", "1", "60000") == 1
    assert await redis.eval(lua.ACQUIRE_SLOT_SCRIPT, 1, "slots", "job-b", "1", "60000") == 0
    assert await redis.eval(lua.RENEW_SLOT_SCRIPT, 1, "slots", "job-a", "90000") == 1
    await redis.zadd("queue", {"job-a": 5, "job-b": 6})
    await redis.set("in-progress:job-a", "1", px=1000)
    assert await redis.eval(lua.RENEW_LEASES_SCRIPT, 3, "queue", "in-progress:job-a",
                            "in-progress:job-b", "60000", "99999", "job-a", "job-b") == 0
    await redis.hset("run", mapping={"status": "done", "version": "7"})
    await redis.hset("thread", mapping={"run": "r1"})
    await redis.hset("checkpoints", mapping={"c1": "blob", "c2": "blob"})
    await redis.hset("writes:c1", mapping={"task": "outcome"})
    await redis.sadd("active", "r1", "r2")
    retire = redis.register_script(lua.RETIRE_SCRIPT)
    keys = ["run", "events", "thread", "checkpoints", "history", "active", "ends"]
    assert await retire(keys=keys, args=["60", "r1", "writes:", "claims:", "3600"]) == 1
    await _posts_together(redis)
    await _takes_grouped(redis)
    await _stream_reads(redis)
    await _pruned_history(redis)


async def _posts_together(redis: MemoryRedis) -> None:
    """Posts of one step's outcomes gathered in one call (a worker's tasks that end together,
    on a cluster; the in-memory store posts each at once): stale, repeated, counted, failed,
    with their jobs' ends; then posts of two steps, one after the other."""
    await redis.hset("claims:s", mapping={"t1": "1", "t2": "1", "t3": "2", "t4": "1", "t5": "1"})
    await redis.hset("writes:s", mapping={"__left": "4", "t2": "old"})
    for job in ("j1", "j3"):
        await redis.set(f"arq:job:{job}", "body")
        await redis.set(protocol.lease_key(job), "token")
        await redis.zadd("queue", {job: 1})

    def post(task: str, attempt: str, job: str = "", failed: str = "", step: str = "s",
             sole: str = "") -> tuple[list[Any], list[Any]]:
        keys: list[Any] = [f"writes:{step}", f"events:{step}", f"claims:{step}", "inbox"]
        args: list[Any] = [task, f"outcome-{task}", attempt, f"note-{step}", 1,
                           "1" if job else "", "", "", failed, sole, "updates", f"data-{task}"]
        if job:  # (as JobQueue.finish_call makes them)
            keys += [protocol.lease_key(job), f"arq:retry:{job}", f"arq:job:{job}", "queue",
                     f"arq:result:{job}"]
            args += [job, b"", 0]
        return keys, args

    posts = [post("t1", "1", "j1"), post("t2", "1"), post("t3", "1"), post("t3", "2", "j3"),
             post("t3", "2"), post("t4", "1", failed="1"), post("t5", "1"), post("t6", ""),
             post("u1", "", step="u", sole="1"), post("t7", "")]
    packed = pack_posts(posts)
    assert packed is not None and packed[1][3] == 3  # (three groups: s, u, s)
    keys, args = packed
    replies = await redis.eval(lua.POST_OUTCOMES_SCRIPT, len(keys), *keys, *args)
    assert replies == [2, 0, -1, 2, 0, 1, 1, 1, 1, 1]
    assert await redis.exists("arq:job:j1", "arq:job:j3", protocol.lease_key("j1")) == 0
    assert await redis.zscore("queue", "j1") is None and await redis.zscore("queue", "j3") is None
    committing = post("t8", "")
    committing[1][6] = "1"
    assert pack_posts([post("t9", ""), committing]) is None  # (a commit goes alone)


async def _takes_grouped(redis: MemoryRedis) -> None:
    """A take of jobs of two runs in groups, as JobQueue.take packs them: a job without a
    start, one given twice, one not due, one held, one expired, a task with an outcome, a
    graph whose tasks are claimed later, and more jobs than the take may take."""
    for run, graph in (("ra", "g"), ("rb", "limited")):
        await redis.hset(f"run:{run}", mapping={"version": "3", "status": "running",
                                                "checkpoint_id": "c", "graph": graph})
    await redis.hset("checkpoints:t", mapping={"c": "blob"})
    await redis.hset("writes:ra", mapping={"a2": "done"})
    await redis.hset("claims:ra", mapping={"a3": "3", "a3:ended": "2", "a3:failures": "1"})
    for job, score in (("x", 1), ("ja1", 1), ("ja2", 1), ("ja3", 1), ("ja4", 9e12),
                       ("ja5", 1), ("jb1", 1), ("jb2", 1), ("jb3", 1)):
        await redis.zadd("queue", {job: score})
        if job != "ja5":
            await redis.set(f"arq:job:{job}", f"body-{job}")
    await redis.set(protocol.lease_key("jb2"), "other")
    keys = ["queue", *["queue"] * 4, "run:ra", "checkpoints:t", "claims:ra", "writes:ra",
            "run:rb", "checkpoints:t", "claims:rb", "writes:rb"]
    args = [1000, 60000, 7, "token", protocol.LEASE_KEY_PREFIX, "arq:job:", "arq:retry:",
            1, "limited",
            "", "", "", 1, "x", "",
            "c", "", "", 6, "ja1", "a1", "ja2", "a2", "ja1", "a1", "ja3", "a3", "ja4", "a4",
            "ja5", "a5",
            "c", "3", "c", 3, "jb1", "b1", "jb2", "b2", "jb3", ""]
    taken = await redis.eval(lua.TAKE_JOBS_SCRIPT, len(keys), *keys, *args)
    assert taken[0::11] == [b"x", b"ja1", b"ja2", b"ja3", b"ja5", b"jb1", b"jb3"]


async def _stream_reads(redis: MemoryRedis) -> None:
    """Reads of part of a stream, by COUNT, from either end (a run's last event is read so)."""
    for n in range(5):
        await redis.xadd("stream", {"n": str(n)})
    for count in (1, 3, 9):
        newest = await redis.xrevrange("stream", count=count)
        assert [fields[b"n"] for _, fields in newest] == [b"4", b"3", b"2", b"1", b"0"][:count]
        oldest = await redis.xrange("stream", count=count)
        assert [fields[b"n"] for _, fields in oldest] == [b"0", b"1", b"2", b"3", b"4"][:count]
    assert await redis.xrevrange("stream", max="+", min="-") == list(
        reversed(await redis.xrange("stream")))


async def _pruned_history(redis: MemoryRedis) -> None:
    """A thread kept to a depth of 2: its commits prune, and the end of its second run deletes
    the large values of the first that nothing refers to any more (its events gone)."""
    config = {"configurable": {"thread_id": "deep"}}
    tag = protocol.thread_tag("deep")
    async with EmbeddedCluster([loop("pruned")], redis=redis, history_depth=2) as cluster:
        # (a small input: a run hash holding a large one lists its fields in another order)
        first = await cluster.client.submit("pruned", {"n": 0, "stop": 3}, config)
        assert (await asyncio.wait_for(first.result(), LIMIT))["n"] == 3
        await redis.delete(protocol.event_blobs_key(first.run_id))
        second = await cluster.client.submit("pruned", {"n": 10, "stop": 11}, config)
        assert (await asyncio.wait_for(second.result(), LIMIT))["n"] == 11
        while await redis.hexists(protocol.blobs_key(tag), blob_id(value(1))):
            await asyncio.sleep(0.01)  # (deleted after the run's end, by whoever ended it)


def _normal(value: Any) -> Any:
    """A reply with stream entry ids (they come from each store's clock) left out."""
    if isinstance(value, bytes):
        return b"<id>" if ENTRY_ID.match(value) else value
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {_normal(k): _normal(v) for k, v in value.items()}
    return value


async def _dump(redis: Redis) -> dict[bytes, Any]:
    """Every key: its type, its value (streams without their ids) and whether it expires."""
    found = {}
    for key in sorted(await redis.keys("*")):
        kind = (await redis.type(key)).decode()
        if kind == "hash":
            value: Any = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(await redis.smembers(key))
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = [fields for _, fields in await redis.xrange(key)]
        else:
            value = await redis.get(key)
        if CLOCKED_KEY.search(key):  # (times of each store's clock: which fields, not values)
            value = sorted(v[0] if isinstance(v, tuple) else v for v in value)
        found[key] = (kind, value, await redis.pttl(key) > 0)
    return found


async def test_the_in_memory_store_answers_as_redis_with_its_lua(
        monkeypatch: pytest.MonkeyPatch, redis_servers: Any) -> None:
    record: list[tuple[str, list[bytes], Any]] = []
    stores: list[Recorder] = []

    def recorded(keyspace: Keyspace | None = None) -> MemoryRedis:
        stores.append(Recorder(shared, record))  # (a saver's threads too: one Redis has all)
        return stores[-1]

    shared = Keyspace()
    monkeypatch.setattr(embedded, "in_memory_redis", recorded)
    await asyncio.wait_for(_programs(), LIMIT)
    # (no process of the runs is left to write once they returned: the record is complete)
    await _rarer_scripts(recorded())

    seen = {raw[0].decode() if name == "EVALSHA" else sha(raw[0].decode())
            for name, raw, _ in record if name in ("EVALSHA", "EVAL")}
    assert {NAMES[s] for s in set(NAMES) - seen} == set()

    server = redis_servers.start()
    real = Redis.from_url(server.url)
    compared = 0
    try:
        for name, raw, reply in record:
            if name in ("XREAD", "TIME"):  # (reads by ids of the in-memory clock)
                continue
            if isinstance(reply, ResponseError) and "unknown command" in str(reply):
                continue  # (INFO and the like: refused in memory, so its callers do without)
            args: list[Any] = [name, *raw]
            if name == "EVALSHA":
                args = ["EVAL", LUA[raw[0].decode()], *raw[1:]]
            try:
                answer = await real.execute_command(*args)
            except NoScriptError:
                raise
            except ResponseError as exc:
                answer = exc
            if name == "EVALSHA" and raw[0].decode() in CLOCKED or name in NOT_COMPARED:
                continue
            if isinstance(reply, ResponseError) or isinstance(answer, ResponseError):
                assert type(reply) is type(answer), (name, raw, reply, answer)
                continue
            mine = stores[0]._parse(name, reply, {})
            if name in UNORDERED:
                mine, answer = sorted(mine), sorted(answer)
            assert _normal(mine) == _normal(answer), (name, raw[:6])
            compared += 1
        assert compared > 200
        memory = _dump(MemoryRedis(shared))
        assert await memory == await _dump(real)
    finally:
        await real.aclose()
