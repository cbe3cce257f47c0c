"""The scaling prototype's pure parts: the router's placement of threads and runs on shards,
the model's arithmetic, and the census of keys (docs/scaling.md). Nothing is started."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from redis.crc import key_slot

from arqgraph import protocol
from arqgraph.client import run_id_for
from bench.scaling_model import (
    RUN_SLOT,
    Cost,
    capacities,
    census,
    first_limit,
    key_class,
    keys_of,
    per_second,
    shards_needed,
    workers_to_saturate,
)
from bench.shards import ShardRouter, place_tag, shard_score, thread_of_config

SHARDS = ["shard-0", "shard-1"]


def router(count: int = 2) -> ShardRouter:
    """A router with no clients behind it: placement needs none (submit is not called)."""
    return ShardRouter([None] * count)  # type: ignore[list-item]


def test_a_thread_stays_on_one_shard_and_its_runs_with_it() -> None:
    r = router()
    for i in range(200):
        thread = f"user-{i}"
        shard = r.shard_of_thread(thread)
        assert shard == r.shard_of_thread(thread) == router().shard_of_thread(thread)
        for _ in range(3):  # every run of the thread, found back from its id alone
            assert r.shard_of_run(protocol.new_run_id(thread)) == shard
        assert r.shard_of_run(run_id_for("a-key", thread)) == shard


def test_a_threadless_run_is_found_from_its_id() -> None:
    r = router()
    for i in range(100):
        key = f"key-{i}"
        run_id = run_id_for(key, None)  # what Client.submit(run_id=key) makes without a thread
        assert r.shard_of_run(run_id) == place_tag(protocol.thread_tag(f"run:{key}"), r.names)


def test_many_threads_spread_over_both_shards() -> None:
    counts = Counter(router().shard_of_thread(f"thread-{i}") for i in range(2000))
    assert set(counts) == {0, 1}
    assert 900 <= counts[0] <= 1100  # sha1 is uniform: 1,000 +- 5 standard deviations (22)


def test_adding_a_shard_moves_only_what_the_new_shard_wins() -> None:
    tags = [protocol.thread_tag(f"thread-{i}") for i in range(3000)]
    before = [place_tag(t, SHARDS) for t in tags]
    after = [place_tag(t, [*SHARDS, "shard-2"]) for t in tags]
    moved = [(b, a) for b, a in zip(before, after, strict=True) if a != b]
    assert all(a == 2 for _, a in moved)
    assert 800 <= len(moved) <= 1200  # about a third


def test_placement_is_stable_and_needs_shards() -> None:
    assert shard_score("shard-0", "abc") == shard_score("shard-0", "abc")
    assert shard_score("shard-0", "abc") != shard_score("shard-1", "abc")
    with pytest.raises(ValueError):
        place_tag("abc", [])
    with pytest.raises(ValueError):
        ShardRouter([None, None], ["same", "same"])  # type: ignore[list-item]
    assert thread_of_config({"configurable": {"thread_id": 7}}) == "7"
    assert thread_of_config(None) is None and thread_of_config({"configurable": {}}) is None


def test_the_model_arithmetic() -> None:
    cost = Cost(unit="task", commands=20, script_calls=1, redis_cpu_us=100, script_us=80,
                orchestrator_cpu_us=25, worker_cpu_us=400, net_bytes=5_000)
    assert per_second(100) == 10_000 and per_second(100, cores=2) == 20_000
    assert per_second(0) == math.inf
    limits = capacities(cost, orchestrators=1, link_bytes_per_s=125_000_000)
    assert limits == {"redis core": 10_000, "orchestrator cores (1)": 40_000, "network": 25_000}
    assert first_limit(limits) == ("redis core", 10_000)
    assert first_limit(capacities(cost, link_bytes_per_s=25_000_000)) == ("network", 5_000)
    slow_orchestrator = Cost("run", 100, 7, 500, 400, 1_000, 2_000, 20_000)
    assert first_limit(capacities(slow_orchestrator))[0] == "orchestrator cores (1)"
    assert first_limit(capacities(slow_orchestrator, orchestrators=4))[0] == "redis core"
    assert workers_to_saturate(10_000, 1_000) == 10
    assert workers_to_saturate(10_000, 3_000) == 4  # a part of a worker is a whole one
    with pytest.raises(ValueError):
        workers_to_saturate(10_000, 0)
    assert shards_needed(25_000, 10_000) == 4  # 7,000 each at 70 %
    assert shards_needed(5_000, 10_000) == 1 and shards_needed(0, 10_000) == 1


def test_the_census_of_keys() -> None:
    run = protocol.new_run_id("t")
    tag = protocol.tag_of(run)
    job = protocol.job_id(run, "c1", "task1")
    assert key_class(protocol.run_key(run)) == RUN_SLOT
    assert key_class(protocol.writes_key(tag, "c1")) == RUN_SLOT
    assert key_class(protocol.DEFAULT_QUEUE).startswith("queue")
    assert key_class(protocol.ready_key(protocol.DEFAULT_QUEUE)).startswith("ready list")
    assert key_class(protocol.inbox_key("g")).startswith("inbox")
    assert key_class(protocol.active_key("g")).startswith("active runs")
    assert key_class(protocol.lease_key(job)).startswith("arq's job keys")
    assert keys_of(["DEL", "a", "b"]) == ["a", "b"]
    assert keys_of(["BLMPOP", "1", "2", "k1", "k2", "LEFT", "COUNT", "5"]) == ["k1", "k2"]
    assert keys_of(["BRPOP", "k1", "k2", "0"]) == ["k1", "k2"]
    assert keys_of(["EVALSHA", "abc", "1", "k"]) == [] and keys_of(["PING"]) == []
    assert keys_of(["hget", "h", "f"]) == ["h"]
    counts = census([["ZADD", protocol.DEFAULT_QUEUE, "1", job], ["HGET", protocol.run_key(run), "x"],
                     ["DEL", protocol.lease_key(job), protocol.run_key(run)]])
    assert counts[RUN_SLOT] == 2 and sum(counts.values()) == 4


class FakeClient:
    """Stands in for a shard's `Client`: names each run as `Client.submit` does
    (`run_id_for`), so that the router's placement is checked against the real id scheme."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runs: list[str] = []

    async def submit(self, graph: str, input: Any, config: Any = None, **options: Any) -> Any:
        thread = thread_of_config(config)
        run_id = run_id_for(options.get("run_id") or f"own-{len(self.runs)}", thread)
        self.runs.append(run_id)
        return SimpleNamespace(run_id=run_id, client=self)

    def handle(self, run_id: str, graph: str = "") -> Any:
        return SimpleNamespace(run_id=run_id, client=self)


async def test_the_router_submits_to_the_thread_shard_and_reads_back_from_it() -> None:
    clients = [FakeClient("a"), FakeClient("b")]
    r = ShardRouter(clients)  # type: ignore[arg-type]
    for i in range(40):
        config = {"configurable": {"thread_id": f"t{i}"}} if i % 2 else None
        shard, handle = await r.submit("g", {}, config)
        assert handle.client is clients[shard]
        assert r.shard_of_run(handle.run_id) == shard  # found again from its id alone
        assert r.handle(handle.run_id).client is clients[shard]
        if config is not None:
            assert shard == r.shard_of_thread(f"t{i}")
    assert clients[0].runs and clients[1].runs


def test_every_key_of_a_thread_shares_one_hash_slot_and_the_queue_does_not() -> None:
    """What docs/scaling.md says of Redis Cluster today: a thread's and its runs' keys are in
    one slot; the queue and arq's job keys are not; a subgraph's child run has a tag of its own."""
    thread = "user-42"
    run = protocol.new_run_id(thread)
    tag = protocol.tag_of(run)
    keys = [protocol.run_key(run), protocol.events_key(run), protocol.children_key(run),
            protocol.thread_key(tag), protocol.checkpoints_key(tag), protocol.blobs_key(tag),
            protocol.history_key(tag), protocol.writes_key(tag, "c1"),
            protocol.claims_key(tag, "c1"), protocol.call_done_key(tag, "c1", "call"),
            protocol.served_thread_key(thread), protocol.served_runs_key(thread),
            protocol.served_run_key(run)]
    slots = {key_slot(k.encode()) for k in keys}
    assert len(slots) == 1
    job = protocol.job_id(run, "c1", "task1")
    shared = [protocol.DEFAULT_QUEUE, protocol.lease_key(job), f"arq:job:{job}",
              protocol.inbox_key("g"), protocol.active_key("g")]
    assert all(key_class(k) != RUN_SLOT for k in shared)
    assert all(key_slot(k.encode()) not in slots for k in shared)  # (for this thread's tag)
    child = protocol.child_run_id(protocol.child_thread(thread, "sub:1"), run, "c1:t:0:1")
    assert protocol.tag_of(child) != tag
