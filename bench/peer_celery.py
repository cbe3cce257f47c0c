"""Celery as a peer (`bench.peers`): a Redis broker and result backend, its defaults otherwise.

    celery -A bench.peer_celery worker   (BENCH_PEER_REDIS names the Redis)
"""

from __future__ import annotations

import os

from celery import Celery

URL = os.environ.get("BENCH_PEER_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("bench_peer", broker=URL, backend=URL)
app.conf.worker_hijack_root_logger = False


@app.task
def step(x: int) -> int:
    """One trivial task: a run is three of them in a chain."""
    return x + 1
