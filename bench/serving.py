"""The `serve` scenario: what LangGraph's HTTP API (`arqgraph serve`, one server process) costs
beside a producer's direct `Client`: runs/s of many small runs waited at once, and the latency
of a run's first event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.cluster import free_port
from bench.env import Env
from bench.graphs import SPECS
from bench.model import CLUSTER, Result, Row, median

SERVER = "arqgraph serve (HTTP, langgraph_sdk)"
FIRST_EVENTS = 20  # runs whose first event is timed, one after the other
HTTP_BUDGET = 0.20  # the share of runs/s the HTTP layer may cost


def _start_server(env: Env) -> str:
    """A server process on the benchmark's cluster, answering; its URL."""
    assert env.cluster is not None
    port = free_port()
    proc = env.cluster._spawn("server", ["serve", *SPECS, "--redis", env.cluster.url,
                                         "--port", str(port)])
    env.cluster.arq_procs.append(proc)  # (stopped with the cluster's other helpers)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.alive():
        try:
            if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"bench: the server did not answer:\n{proc.tail()}")


async def _timed(work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def serve(env: Env) -> Result:
    from langgraph_sdk import get_client

    assert env.client is not None
    client = env.client
    res = Result("serve", reference=CLUSTER)
    n, reps = env.sizes.runs, env.sizes.reps
    url = _start_server(env)
    sdk = get_client(url=url, timeout=120)

    async def direct() -> None:
        handles = await asyncio.gather(*[client.submit("bench_three", {"x": i})
                                         for i in range(n)])
        outs = await asyncio.gather(*[h.result() for h in handles])
        assert all(o["x"] == i + 3 for i, o in enumerate(outs))

    async def over_http() -> None:
        outs: list[Any] = await asyncio.gather(*[
            sdk.runs.wait(None, "bench_three", input={"x": i}) for i in range(n)])
        assert all(o["x"] == i + 3 for i, o in enumerate(outs))

    async def first_direct() -> float:
        started = time.perf_counter()
        handle = await client.submit("bench_three", {"x": 0})
        async for _ in handle.stream("values"):
            return time.perf_counter() - started
        raise AssertionError("no event")

    async def first_http() -> float:
        started = time.perf_counter()
        async for part in sdk.runs.stream(None, "bench_three", input={"x": 0},
                                          stream_mode="values"):
            if part.event == "values":
                return time.perf_counter() - started
        raise AssertionError("no event")

    try:
        for backend, work in ((CLUSTER, direct), (SERVER, over_http)):
            secs = [await _timed(work) for _ in range(reps)]
            res.add(Row(backend, "runs/s", "runs/s", [n / s for s in secs],
                        higher_is_better=True, detail=f"{median(secs):.2f} s for {n:,}"))
        for backend, first in ((CLUSTER, first_direct), (SERVER, first_http)):
            ms = [1000 * await first() for _ in range(FIRST_EVENTS)]
            res.add(Row(backend, "first event", "ms", ms, detail=f"median of {FIRST_EVENTS}"))
    finally:
        await sdk.http.client.aclose()
    direct_rate, http_rate = res.rows[0].value, res.rows[1].value
    res.met = http_rate >= (1 - HTTP_BUDGET) * direct_rate
    res.verdict = (f"{http_rate:,.0f} runs/s over HTTP vs {direct_rate:,.0f} direct "
                   f"({1 - http_rate / direct_rate:.0%} less; budget {HTTP_BUDGET:.0%})")
    return res
