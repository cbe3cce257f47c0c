"""The arithmetic of docs/scaling.md: from what one task costs each process, what one Redis
carries, what runs out first, and how many workers or shards a load needs. Pure functions, so
that the test checks them without a cluster.

Also the census of Redis keys: which ones a run's work touches, sorted into the run's own hash
slot and the keys every run shares (the queue, the wake-up list, the inbox, ...).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from arqgraph import protocol

GIGABIT = 125_000_000  # bytes a second on a 1 Gbit/s link, one way
LINK_BYTES_PER_S = 10 * GIGABIT  # a 10 Gbit/s link, as between machines in one data centre
HEADROOM = 0.7  # plan a Redis core at 70 % busy: its latency climbs fast beyond that


@dataclass(frozen=True)
class Cost:
    """What one unit of work (a fanned-out task, a chain superstep, a small run) costs."""

    unit: str
    commands: float  # Redis commands, those run inside scripts included (INFO commandstats)
    script_calls: float  # EVALSHA calls: the round trips that carry most of the commands
    redis_cpu_us: float  # the redis-server's CPU, user + system (INFO cpu)
    script_us: float  # time Redis counts inside script calls, their commands included
    orchestrator_cpu_us: float
    worker_cpu_us: float
    net_bytes: float  # bytes into and out of Redis
    wall_us: float = 0.0  # wall time of the measured work, per unit


def per_second(cpu_us: float, cores: float = 1.0) -> float:
    """How many units a second `cores` cores carry when each unit costs `cpu_us` of CPU."""
    return math.inf if cpu_us <= 0 else cores * 1e6 / cpu_us


def capacities(cost: Cost, *, orchestrators: int = 1,
               link_bytes_per_s: float = LINK_BYTES_PER_S) -> dict[str, float]:
    """Units a second each shared resource of one shard allows, alone: one Redis core, the
    orchestrators (one core each), the network link of the Redis host (in + out share it
    here: a conservative reading of a full-duplex link)."""
    return {
        "redis core": per_second(cost.redis_cpu_us),
        f"orchestrator cores ({orchestrators})": per_second(cost.orchestrator_cpu_us,
                                                             orchestrators),
        "network": math.inf if cost.net_bytes <= 0 else link_bytes_per_s / cost.net_bytes,
    }


def first_limit(limits: Mapping[str, float]) -> tuple[str, float]:
    """The resource that runs out first, and the rate at which it does."""
    name = min(limits, key=lambda k: limits[k])
    return name, limits[name]


def workers_to_saturate(capacity: float, per_worker: float) -> int:
    """How many workers, each doing `per_worker` units a second, it takes to reach `capacity`."""
    if per_worker <= 0:
        raise ValueError("a worker must do some work")
    return math.ceil(capacity / per_worker)


def shards_needed(rate: float, per_shard: float, headroom: float = HEADROOM) -> int:
    """Shards to carry `rate` units a second when one carries `per_shard` at full load, each
    planned at `headroom` of that."""
    return max(1, math.ceil(rate / (per_shard * headroom)))


# -- the census of keys ----------------------------------------------------------------------

RUN_SLOT = "the run's hash slot"  # a key with the thread's tag: {<tag>}
MULTI_KEY = {"DEL", "EXISTS", "UNLINK", "MGET", "TOUCH", "WATCH"}
NUMKEYS_AT = {"BLMPOP": 1, "LMPOP": 0, "BZMPOP": 1, "ZMPOP": 0, "EVALSHA": 1, "EVAL": 1}
NO_KEY = {"PING", "INFO", "ECHO", "SCRIPT", "CLIENT", "SELECT", "HELLO", "MULTI", "EXEC",
          "PUBLISH", "SUBSCRIBE", "UNSUBSCRIBE", "TIME", "COMMAND", "DISCARD", "READONLY",
          "CONFIG", "MONITOR", "QUIT", "RESET", "UNWATCH"}


def keys_of(args: list[str]) -> list[str]:
    """The keys of a command (as MONITOR shows it: name, then arguments), for the commands
    arqgraph sends; the first argument for the others. A script call's keys are counted where
    its commands run, so EVALSHA is given none here."""
    name = args[0].upper() if args else ""
    rest = args[1:]
    if not rest or name in NO_KEY or name in ("EVALSHA", "EVAL"):
        return []
    if name in MULTI_KEY:
        return rest
    if name in ("BLPOP", "BRPOP"):
        return rest[:-1]
    if name in NUMKEYS_AT:
        at = NUMKEYS_AT[name]
        count = int(rest[at]) if len(rest) > at and rest[at].isdigit() else 0
        return rest[at + 1:at + 1 + count]
    return rest[:1]


def key_class(key: str) -> str:
    """Where a key lives: in the run's hash slot (it carries the thread's tag) or which of the
    keys every run shares it is."""
    if "{" in key and "}" in key.split("{", 1)[1]:
        return RUN_SLOT
    queue = protocol.DEFAULT_QUEUE
    classes = (
        (key == queue, "queue (sorted set, one per queue)"),
        (key == protocol.ready_key(queue), "ready list (wake-up, one per queue)"),
        (key.startswith(f"{protocol.PREFIX}:inbox:"), "inbox (list, one per graph)"),
        (key.startswith(f"{protocol.PREFIX}:active:"), "active runs (set, one per graph)"),
        (key.startswith(f"{protocol.PREFIX}:ends:"), "ends (list, one per producer)"),
        (key == protocol.GRAPHS_KEY, "graphs (hash, registrations)"),
        (key in (protocol.WORKERS_KEY, protocol.ORCHESTRATORS_KEY), "presence (heartbeats)"),
        (key.startswith("arq:"), "arq's job keys (one set per job, no tag)"),
    )
    for hit, name in classes:
        if hit:
            return name
    return "other shared keys"


def census(commands: Iterable[list[str]]) -> Counter[str]:
    """How many key accesses fall in each class, over commands as MONITOR shows them."""
    counts: Counter[str] = Counter()
    for args in commands:
        for key in keys_of(args):
            counts[key_class(key)] += 1
    return counts
