"""The `serve` scenario: what LangGraph's HTTP API (`arqgraph serve`, one server process) costs
beside a producer's direct `Client`: runs/s of many small runs waited at once, and the latency
of a run's first event.

The HTTP producers are `langgraph_sdk` clients of 100 runs each, as many users or producer
processes would be: one httpx client holds 100 connections by default, and its pool's
bookkeeping grows with the square of the requests queued behind them (1,000 runs through one
client spend most of their time there, in the producer, not the server). A Python HTTP client
costs several times a direct `Client`'s CPU per run; in a deployment it runs on the users'
machines, not the pool's. So the pool and the server run on one half of the cores and the
producers on the other (both ways alike): the runs/s compared are what the pool's cores give.
The CPU each process spent per run is in the details.

A direct producer submitting 1,000 runs at once sends them in a few pipelines, and the pool
takes them in bursts; a server gets them a request at a time. The row of a direct producer
submitting one run at a time tells that part of the gap apart from the HTTP layer's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx

from bench.cluster import cpu_seconds, free_port
from bench.env import Env
from bench.graphs import SPECS
from bench.model import CLUSTER, Result, Row, median

SERVER = "arqgraph serve (HTTP, langgraph_sdk)"
ONE_BY_ONE = "arqgraph-cluster, one submit at a time"
PER_CLIENT = 100  # runs a langgraph_sdk client waits for at once (its pool's connections)
FIRST_EVENTS = 20  # runs whose first event is timed, one after the other
HTTP_BUDGET = 0.20  # the share of runs/s the HTTP layer may cost


def _start_server(env: Env) -> tuple[str, int]:
    """A server process on the benchmark's cluster, answering; its URL and pid."""
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
                return url, proc.pid
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"bench: the server did not answer:\n{proc.tail()}")


def _pool(env: Env) -> list[int]:
    assert env.cluster is not None
    c = env.cluster
    return [p.pid for p in (c.orchestrator, *c.worker_procs) if p] + (
        [c.redis_proc.pid] if c.redis_proc else [])


def _cpu(env: Env, server: int) -> dict[str, float]:
    """CPU seconds so far: the pool's processes (and of them Redis's and the orchestrator's),
    the server's, this producer's."""
    assert env.cluster is not None
    c = env.cluster
    redis = cpu_seconds(c.redis_proc.pid) if c.redis_proc else 0.0
    orchestrator = cpu_seconds(c.orchestrator.pid) if c.orchestrator else 0.0
    return {"pool": sum(cpu_seconds(p) for p in _pool(env)), "redis": redis,
            "orchestrator": orchestrator, "server": cpu_seconds(server),
            "producer": time.process_time()}


@contextlib.contextmanager
def _producers_apart(env: Env, server: int) -> Iterator[bool]:
    """The pool and the server on the first half of this machine's cores, this process (the
    producers) on the others, as clients run on machines of their own; whether it could."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        yield False
        return
    pids = [*_pool(env), server, 0]
    saved = {pid: os.sched_getaffinity(pid) for pid in pids}
    for pid in pids:
        os.sched_setaffinity(pid, cpus[len(cpus) // 2:] if pid == 0 else cpus[:len(cpus) // 2])
    try:
        yield True
    finally:
        for pid, cores in saved.items():
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(pid, cores)


async def _timed(work: Callable[[], Awaitable[Any]], cpu: Callable[[], Awaitable[dict[str, float]]],
                 spent: dict[str, float]) -> float:
    """Seconds `work` took; adds the CPU seconds each process spent to `spent`."""
    before, started = await cpu(), time.perf_counter()
    await work()
    seconds = time.perf_counter() - started
    for name, value in (await cpu()).items():
        spent[name] = spent.get(name, 0.0) + value - before[name]
    return seconds


async def _redis_reads(env: Env) -> dict[str, float]:
    """Redis's reads of its clients' requests so far (a round trip each: a pipeline is one),
    in thousands, so that the details show them per run."""
    assert env.client is not None
    stats = await env.client.redis.info("stats")
    return {"redis reads": stats["total_reads_processed"] / 1000}


def _cpu_detail(spent: dict[str, float], runs: int) -> str:
    shown = ", ".join(f"{k} {1000 * v / runs:.2f}" for k, v in spent.items()
                      if k != "redis reads" and (k != "server" or v > 0.01 * runs / 1000))
    return f"CPU ms/run {shown}; Redis reads/run {1000 * spent['redis reads'] / runs:.1f}"


def _cpu_ratio(direct: dict[str, float], served: dict[str, float]) -> float:
    """The runs/s over HTTP that the CPU per run allows, as a share of the direct runs/s, when
    the pool and the server share the pool's cores: the pool's CPU per direct run over the
    pool's and the server's per served run (the same number of runs each way). It moves less
    with the machine's load than the runs/s, which a loaded producer's core may bound."""
    return direct["pool"] / (served["pool"] + served["server"])


async def _measures(env: Env, server: int) -> dict[str, float]:
    return {**_cpu(env, server), **await _redis_reads(env)}


async def serve(env: Env) -> Result:
    from langgraph_sdk import get_client

    assert env.client is not None
    client = env.client
    res = Result("serve", reference=CLUSTER)
    n, reps = env.sizes.runs, env.sizes.reps
    url, server = _start_server(env)
    sdks = [get_client(url=url, timeout=120) for _ in range(-(-n // PER_CLIENT))]
    sdk = sdks[0]

    async def direct() -> None:
        handles = await asyncio.gather(*[client.submit("bench_three", {"x": i})
                                         for i in range(n)])
        outs = await asyncio.gather(*[h.result() for h in handles])
        assert all(o["x"] == i + 3 for i, o in enumerate(outs))

    async def one_by_one() -> None:  # (as a server submits: a request's run at a time)
        handles = [await client.submit("bench_three", {"x": i}) for i in range(n)]
        outs = await asyncio.gather(*[h.result() for h in handles])
        assert all(o["x"] == i + 3 for i, o in enumerate(outs))

    async def over_http() -> None:
        outs: list[Any] = await asyncio.gather(*[
            sdks[i // PER_CLIENT].runs.wait(None, "bench_three", input={"x": i})
            for i in range(n)])
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

    spents: dict[str, dict[str, float]] = {}
    apart = contextlib.ExitStack()
    try:
        if apart.enter_context(_producers_apart(env, server)):
            res.notes.append("The pool and the server ran on one half of the cores, the "
                             "producers (direct and HTTP) on the other.")
        for backend, work in ((CLUSTER, direct), (ONE_BY_ONE, one_by_one), (SERVER, over_http)):
            spent = spents[backend] = {}
            secs = [await _timed(work, lambda: _measures(env, server), spent)
                    for _ in range(reps)]
            res.add(Row(backend, "runs/s", "runs/s", [n / s for s in secs],
                        higher_is_better=True, detail=f"{median(secs):.2f} s for {n:,}; "
                        + _cpu_detail(spent, n * reps)))
        for backend, first in ((CLUSTER, first_direct), (SERVER, first_http)):
            ms = [1000 * await first() for _ in range(FIRST_EVENTS)]
            res.add(Row(backend, "first event", "ms", ms, detail=f"median of {FIRST_EVENTS}"))
    finally:
        apart.close()
        for each in sdks:
            await each.http.client.aclose()
    direct_rate, serial_rate, http_rate = (r.value for r in res.rows[:3])
    res.met = http_rate >= (1 - HTTP_BUDGET) * direct_rate
    served, burst = spents[SERVER], spents[CLUSTER]
    res.verdict = (f"{http_rate:,.0f} runs/s over HTTP vs {direct_rate:,.0f} direct "
                   f"({1 - http_rate / direct_rate:.0%} less; budget {HTTP_BUDGET:.0%}) and "
                   f"{serial_rate:,.0f} direct one submit at a time; the server's CPU per run "
                   f"is {served['server'] / served['pool']:.0%} of the pool's; by CPU per run "
                   f"alone, the pool's cores give {_cpu_ratio(burst, served):.2f}x the direct "
                   "runs/s over HTTP")
    return res
