"""The resource scenarios: idle cost, bytes moved for a large state, memory of many runs."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import cast

from arqgraph import protocol
from bench import peers
from bench.cluster import Cluster, cpu_seconds, rss_bytes
from bench.env import Env
from bench.graphs import fanout_input
from bench.model import ARQ, CLUSTER, LANGGRAPH, Result, Row

# -- idle -------------------------------------------------------------------------------------

POOL = f"{CLUSTER}: pool (orchestrator + 2 workers)"
SETTLE = 5.0  # seconds before a window: a process leaves its pace of work at its next beat
ARQ_WINDOW = 5.0  # plain arq polls every 2 ms: a short window says enough


async def idle(env: Env) -> Result:
    """arqgraph's pool doing nothing, then plain arq's worker and each peer's pool alone (the
    others frozen with SIGSTOP or not started: Redis's counters are global, so only what runs
    makes commands). Idle processes wake every 20 s: the window holds several such rounds."""
    cluster = env.cluster
    assert cluster is not None and cluster.orchestrator is not None
    res = Result("idle")
    window = env.sizes.idle_window
    orch, workers = cluster.orchestrator, cluster.worker_procs
    pool = [orch, *workers]
    await asyncio.sleep(SETTLE)
    cpu, commands = cluster.idle_window(lambda: {p.name + str(p.pid): cpu_seconds(p.pid)
                                                 for p in pool}, window)
    res.diagnostics["idle_commands"] = commands
    pool_cpu, pool_commands = sum(cpu.values()), sum(commands.values())
    res.add(Row(f"{CLUSTER}: orchestrator", "CPU", "%", [cpu[orch.name + str(orch.pid)]]))
    res.add(Row(f"{CLUSTER}: each worker (max)", "CPU", "%",
                [max(cpu[p.name + str(p.pid)] for p in workers)]))
    res.add(Row(POOL, "CPU", "%", [pool_cpu]))
    res.add(Row(POOL, "Redis commands/s", "cmd/s", [pool_commands]))
    added = _added_worker(cluster, window) - pool_commands
    res.add(Row(f"{CLUSTER}: each added worker", "Redis commands/s", "cmd/s", [added]))
    cluster.start_arq_workers(1)
    try:
        await asyncio.sleep(0.5)
        arq = cluster.arq_procs[0]
        for proc in pool:
            proc.pause()
        try:
            arq_cpu, arq_cmds = cluster.idle_window(lambda: {"arq": cpu_seconds(arq.pid)},
                                                    ARQ_WINDOW)
        finally:
            for proc in pool:
                proc.resume()
    finally:
        cluster.stop_arq_workers()
    res.add(Row(f"{ARQ} worker (poll 2 ms)", "CPU", "%", [arq_cpu["arq"]]))
    res.add(Row(f"{ARQ} worker (poll 2 ms)", "Redis commands/s", "cmd/s",
                [sum(arq_cmds.values())]))
    others = peers.idle_rows(cluster, pool, window, SETTLE)
    for row in others:
        res.add(row)
    beaten = [r for r in others if r.value > (pool_cpu if r.unit == "%" else pool_commands)]
    res.met = pool_commands < 3 and added <= 1 and len(beaten) == len(others)
    res.verdict = (f"pool of 2 workers and an orchestrator: {pool_commands:.2f} cmd/s, "
                   f"{pool_cpu:.2f} % CPU over {window:.0f} s, {added:.2f} cmd/s more per "
                   f"worker; cheaper than {len(beaten)} of {len(others)} peer figures (target "
                   "under 3 cmd/s, at most 1 more per worker, below every peer's)")
    return res


def _added_worker(cluster: Cluster, window: float) -> float:
    """The pool's Redis commands/s with a third worker, idle."""
    cluster.add_worker()
    try:
        cluster.wait_ready()
        time.sleep(SETTLE)
        return sum(cluster.idle_window(dict, window)[1].values())
    finally:
        cluster.worker_procs.pop().stop()


# -- fan-out over a 1 MB state: bytes crossing the network ------------------------------------


async def blob(env: Env) -> Result:
    """How many times the state crosses the network: Redis's bytes in + out for a run, divided
    by the state's size. The run has 4 supersteps (input, plan, the fan-out, reduce)."""
    res = Result("blob", reference=LANGGRAPH)
    n, size, reps = env.sizes.blob_tasks, env.sizes.blob_bytes, env.sizes.reps
    inp = fanout_input(n, blob=size)
    crossings, small, secs = [], [], []
    for _ in range(reps):
        with env.probe() as probe:
            seconds, out = await env.on_cluster("bench_fanout", inp)
        assert out["total"] == n and len(out["blob"]) == size
        crossings.append(probe.net_bytes / size)
        secs.append(seconds)
        with env.probe() as one:  # the same run with a single Send: the per-task share
            await env.on_cluster("bench_fanout", fanout_input(1, blob=size))
        small.append(one.net_bytes / size)
    per_task = [(c - s) / (n - 1) for c, s in zip(crossings, small, strict=True)]
    res.add(Row(CLUSTER, "state crossings per run", "x state", crossings,
                detail=f"{sum(crossings) / len(crossings) * size / 1e6:,.0f} MB moved"))
    res.add(Row(CLUSTER, "state crossings per fanned-out task", "x state", per_task))
    res.add(Row(CLUSTER, "wall", "s", secs))
    lg = [(await env.on_langgraph("bench_fanout", inp))[0] for _ in range(reps)]
    res.add(Row(LANGGRAPH, "wall", "s", lg, detail="in memory: nothing crosses a network"))
    workers = len(env.cluster.worker_procs) if env.cluster else 2
    per_step = res.rows[0].value / 4
    bound = 3 * (workers + 1)
    res.met = per_step <= bound
    res.verdict = (f"{per_step:,.0f} crossings per superstep on average, {res.rows[1].value:.2f} "
                   f"per task (target O(workers): <= {bound} per superstep with {workers} "
                   "workers)")
    return res


# -- many runs in flight: orchestrator memory, Redis memory per finished run ------------------


async def _kept_bytes(cluster: Cluster) -> int:
    """Redis's memory less its clients' and the AOF's buffers, once it stops changing: the
    buffers belong to connections, and Redis shrinks them and frees other transient memory in
    the second after a burst (a 1 MB command leaves a 1 MB query buffer for a while): measured
    from right after the 1 MB state scenario, the runs' memory came out negative."""

    def now() -> int:
        mem = cluster.info("memory")
        return (int(mem["used_memory"]) - int(mem.get("mem_clients_normal", 0))
                - int(mem.get("mem_aof_buffer", 0)))

    last = now()
    for _ in range(20):
        await asyncio.sleep(0.5)
        kept = now()
        if abs(kept - last) < 64 * 1024:
            return kept
        last = kept
    return last


async def inflight(env: Env) -> Result:
    """Every run is held in flight at once (its node waits for a file the bench creates once
    the orchestrator has started them all: each has its first job queued), then let go: the
    orchestrator's peak RSS covers all of them, and the drain measures how fast the cluster
    works off that many runs waiting."""
    cluster, client = env.cluster, env.client
    assert cluster is not None and cluster.orchestrator is not None and client is not None
    res = Result("inflight")
    n = env.sizes.inflight_runs
    redis = cluster.redis()
    orch = cluster.orchestrator.pid
    graph_active = protocol.active_key("bench_hold")
    base_mem = await _kept_bytes(cluster)
    base_rss = rss_bytes(orch)
    peak_rss, peak_flight = base_rss, 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak_rss, peak_flight
        while not stop.is_set():
            peak_rss = max(peak_rss, rss_bytes(orch))
            peak_flight = max(peak_flight, int(cast(int, redis.scard(graph_active))))
            await asyncio.sleep(0.1)

    def queued() -> int:
        return int(cast(int, redis.zcard(protocol.DEFAULT_QUEUE)))

    async def wait_for(done: Callable[[], bool], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    sampler = asyncio.create_task(sample())
    gate = tempfile.mkdtemp(prefix="arqgraph-bench-")
    release = os.path.join(gate, "release")
    already = queued()  # (jobs left by earlier scenarios, if any)
    started = time.perf_counter()
    batch = 1000
    for i in range(0, n, batch):
        await asyncio.gather(*[client.submit("bench_hold", {"release": release})
                               for _ in range(min(batch, n - i))])
    submitted = time.perf_counter() - started
    all_in = await wait_for(lambda: queued() - already >= n, 300)
    all_started = time.perf_counter() - started
    held = queued() - already
    peak_rss = max(peak_rss, rss_bytes(orch))
    open(release, "w").close()
    released = time.perf_counter()
    drained = await wait_for(lambda: not redis.scard(graph_active), 300)
    drain = time.perf_counter() - released
    if drained:  # (else the file stays, for the runs still waiting for it)
        shutil.rmtree(gate)
    stop.set()
    await sampler
    left = int(cast(int, redis.scard(graph_active)))
    per_run = (await _kept_bytes(cluster) - base_mem) / n
    res.add(Row(CLUSTER, "orchestrator peak RSS", "MB", [peak_rss / 1e6],
                detail=f"{base_rss / 1e6:.0f} MB before; peak {peak_flight:,} runs in flight"))
    res.add(Row(CLUSTER, "Redis memory per finished run", "bytes", [per_run],
                detail="kept for --retention (a week)"))
    res.add(Row(CLUSTER, "runs/s started", "runs/s", [n / all_started], higher_is_better=True,
                detail=f"{n:,} submitted in {submitted:.1f} s, all started in {all_started:.1f} s"))
    res.add(Row(CLUSTER, "runs/s drained once released", "runs/s", [n / drain],
                higher_is_better=True, detail=f"all done {drain:.1f} s after their release"))
    res.met = peak_rss <= 300e6 and left == 0 and all_in
    res.verdict = (f"peak RSS {peak_rss / 1e6:.0f} MB with {peak_flight:,} of {n:,} runs in flight "
                   f"at once (target 300 MB at 10,000); Redis {per_run / 1024:.1f} KiB per "
                   "finished run")
    if not all_in:
        res.notes.append(f"only {held:,} of {n:,} runs had started 300 s after their submission")
    if left:
        res.notes.append(f"{left} runs had not finished 300 s after their release")
    return res
