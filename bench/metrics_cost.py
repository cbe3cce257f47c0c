"""The `metrics` scenario: what Prometheus counting costs on the hot path.

The same cluster workload (a batch of small runs, then one fan-out) with the orchestrator and
workers started without --metrics-port and with it, alternating in each repetition (and which
goes first) so that both see the same minutes of a shared machine; the verdict is the ratio of
throughputs, on / off (the median of back-to-back pairs).

A scrape of a worker after each run with metrics on proves the counters counted. The hooks'
cost per node attempt is also timed in this process, which is steadier than a loaded machine's
throughput.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request

from bench.env import Env
from bench.graphs import fanout_input
from bench.model import CLUSTER, Result, Row, median

OFF, ON = f"{CLUSTER}, metrics off", f"{CLUSTER}, --metrics-port"
NO_LOSS = 0.95  # on/off throughput above this is within the noise of this machine


async def metrics(env: Env) -> Result:
    assert env.cluster is not None
    res = Result("metrics", reference=OFF)
    runs, tasks = env.sizes.runs, env.sizes.fanout
    secs: dict[str, dict[bool, list[float]]] = {"runs": {False: [], True: []},
                                                 "fanout": {False: [], True: []}}

    async def batch() -> float:
        assert env.client is not None
        started = time.perf_counter()
        handles = await asyncio.gather(*[env.client.submit("bench_three", {"x": i})
                                         for i in range(runs)])
        outs = await asyncio.gather(*[h.result() for h in handles])
        assert all(o["x"] == i + 3 for i, o in enumerate(outs))
        return time.perf_counter() - started

    async def fanout() -> float:
        seconds, out = await env.on_cluster("bench_fanout", fanout_input(tasks))
        assert out["total"] == tasks, out
        return float(seconds)

    counted = 0.0
    try:
        for rep in range(max(env.sizes.reps, 2)):  # (--quick too: each side goes first once)
            for on in (False, True) if rep % 2 == 0 else (True, False):  # (no side goes first)
                env.cluster.set_metrics(on)
                await env.on_cluster("bench_fanout", fanout_input(64))  # (warm the new processes)
                secs["runs"][on].append(await batch())
                secs["fanout"][on].append(await fanout())
                if on:
                    counted = scrape_count(env, "arqgraph_node_duration_seconds_count")
    finally:
        env.cluster.set_metrics(False)
    for metric, n in (("runs", runs), ("fanout", tasks)):
        unit = "runs/s" if metric == "runs" else "tasks/s"
        for on, backend in ((False, OFF), (True, ON)):
            times = secs[metric][on]
            res.add(Row(backend, unit, unit, [n / s for s in times],
                        higher_is_better=True, detail=f"{median(times):.2f} s for {n:,}"))
    # on/off of each back-to-back pair, then their median: a drift of the machine's load
    # between repetitions cancels out
    ratios = {m: median([off / on for off, on in zip(secs[m][False], secs[m][True], strict=True)])
              for m in secs}
    hooks = hook_microseconds()
    res.diagnostics.update(on_off_ratio=ratios, node_durations_counted_by_one_worker=counted,
                           hook_us_per_attempt=hooks)
    res.met = min(ratios.values()) >= NO_LOSS and counted > 0
    res.verdict = (f"with metrics on, {ratios['runs']:.2f}x the runs/s and "
                   f"{ratios['fanout']:.2f}x the fan-out tasks/s of metrics off "
                   f"(target >= {NO_LOSS}); a worker counted {counted:,.0f} node durations; "
                   f"the hooks of one node attempt take {hooks['on']:.1f} us counting, "
                   f"{hooks['off']:.1f} us not")
    return res


def hook_microseconds(times: int = 100_000) -> dict[str, float]:
    """What the engine's hooks cost per node attempt (start and end), in this process: the
    counting ones against the no-op ones a process without --metrics-port has."""
    from prometheus_client import CollectorRegistry

    from arqgraph.observe import Attempt, Hooks
    from arqgraph.observe.metrics import Metrics, PrometheusHooks

    attempt = Attempt("graph", "node", 1, "run", "thread", 0, queued=0.001)
    cost = {}
    for name, hooks in (("off", Hooks()), ("on", PrometheusHooks(Metrics(CollectorRegistry())))):
        started = time.perf_counter()
        for _ in range(times):
            hooks.attempt_started(attempt)
            hooks.attempt_ended(attempt, 0.001)
        cost[name] = (time.perf_counter() - started) / times * 1e6
    return cost


def scrape_count(env: Env, name: str) -> float:
    """The sum of the samples `name` on the first worker's /metrics."""
    assert env.cluster is not None
    port = env.cluster.metrics_ports[env.cluster.worker_procs[0].pid]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))
