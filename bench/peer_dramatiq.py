"""Dramatiq as a peer (`bench.peers`): a Redis broker, its results middleware on the same Redis
(how a producer waits for a pipeline's end), its defaults otherwise.

    dramatiq bench.peer_dramatiq   (BENCH_PEER_REDIS names the Redis)
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

URL = os.environ.get("BENCH_PEER_REDIS", "redis://127.0.0.1:6379/0")
broker = RedisBroker(url=URL)
broker.add_middleware(Results(backend=RedisBackend(url=URL)))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True)
def step(x: int) -> int:
    """One trivial task: a run is three of them in a pipeline."""
    return x + 1
