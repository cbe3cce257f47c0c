"""A cluster for the differential tests: one orchestrator and two workers serving a spec's
graphs over a database of the session's redis-server, started and stopped together."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import ArqProcesses, RedisServer


@contextmanager
def served_pool(redis_server: RedisServer, arq_processes: ArqProcesses, spec: str,
                database: int, name: str) -> Iterator[str]:
    """Serve `spec` on database `database` until the block ends; yields the cluster's URL."""
    url = redis_server.url.rsplit("/", 1)[0] + f"/{database}"
    orchestrator = arq_processes.orchestrator(spec, redis=url, extra=("--sweep-interval", "1"),
                                              name=f"{name}-orchestrator")
    workers = [arq_processes.worker(spec, redis=url, name=f"{name}-worker",
                                    extra=("--poll-delay", "0.05", "--concurrency", "16"))
               for _ in range(2)]
    orchestrator.wait_for_output("serving graphs", timeout=60)
    for worker in workers:
        worker.wait_for_output("worker serving graphs", timeout=60)
    try:
        yield url
    finally:
        for proc in [orchestrator, *workers]:
            proc.terminate()


def pool_fixture(spec: str, database: int, name: str) -> Callable[..., Any]:
    """A module-scoped fixture serving `spec` (one cluster for all of a module's tests)."""

    @pytest.fixture(scope="module")
    def cluster(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[str]:
        with served_pool(redis_server, arq_processes, spec, database, name) as url:
            yield url

    return cluster  # type: ignore[no-any-return]
