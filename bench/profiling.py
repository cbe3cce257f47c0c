"""Profiles for "where the time goes": py-spy on the cluster's orchestrator and workers while the
chain and the fan-out run, pyinstrument in-process on the embedded path, and Redis's round trip.

py-spy samples each process (non-idle stacks only, so the shares are of CPU spent in Python);
each sample is put in the first category its stack matches from the innermost frame out.
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.env import Env, embedded
from bench.graphs import fanout_input
from bench.model import median, percentile

RATE = 200  # samples per second per process (py-spy itself takes CPU on a small machine)
FEW_SAMPLES = 20  # below this, a process's shares by category would be noise
IDLE = "idle (waiting in epoll)"
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (IDLE, ("selectors.py",)),
    ("logging (arq logs 2 lines per job)", ("logging/",)),
    ("msgpack encode/decode", ("msgpack", "shared/core/codec.py")),
    ("pydantic models", ("pydantic",)),
    ("redis-py (commands, sockets, replies)", ("redis/", "hiredis")),
    ("arq (enqueue, pick-up, bookkeeping)", ("arq/",)),
    ("superstep algorithm (pregel, reducers)", ("shared/core/pregel.py", "shared/core/schema.py")),
    ("protocol encode/decode", ("shared/protocol/",)),
    ("node code and executor", ("workers/executor.py", "bench/graphs.py")),
    ("asyncio event loop", ("asyncio/",)),
)
LOOP = "asyncio event loop"
OWN = ("orchestrator/", "workers/", "shared/")


def categorize(stack: Sequence[str]) -> str:
    """The category of one sample, `stack` ordered root first: the innermost frame that matches
    a category, where asyncio's own frames count only when nothing else matches (a redis-py
    read waiting on an asyncio stream is redis-py's time)."""
    for frame in reversed(stack):
        for name, needles in CATEGORIES:
            if name != LOOP and any(n in frame for n in needles):
                return name
    return LOOP if any("asyncio/" in frame for frame in stack) else "other"


def parse_raw(text: str) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) format: 'frame;frame;...;frame count' per line."""
    samples = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples.append((stack.split(";"), int(count)))
    return samples


def summarize(samples: list[tuple[list[str], int]], top: int = 8) -> dict[str, Any]:
    """Shares of the busy (non-idle) samples: by category, and inclusive per own function."""
    cats: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    idle = 0
    for stack, count in samples:
        category = categorize(stack)
        if category == IDLE:
            idle += count
            continue
        cats[category] += count
        seen = set()
        for frame in stack:  # inclusive time of arqgraph's own functions
            name = frame.split(" (")[0]
            where = frame[frame.find("(") + 1:frame.rfind(":")] if "(" in frame else ""
            if any(o in where for o in OWN) and "cli.py" not in where and name not in seen:
                seen.add(name)
                own[f"{name} ({where.rsplit('/', 2)[-2]}/{where.rsplit('/', 1)[-1]})"] += count
    busy = sum(cats.values())
    total = busy or 1
    return {"samples": busy, "idle": idle,
            "categories": {k: v / total for k, v in cats.most_common()},
            "functions": {k: v / total for k, v in own.most_common(top)}}


async def py_spy(pids: dict[str, int], work: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Record every process in `pids` while `work` runs; a summary per process."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(binary).exists():
        return {"error": "py-spy is not installed (pip install -e '.[bench]')"}
    tmp = Path(tempfile.mkdtemp(prefix="arqgraph-pyspy-"))
    procs = {}
    for name, pid in pids.items():
        out = tmp / f"{name}.txt"
        procs[name] = (subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--format", "raw", "--rate", str(RATE),
             "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out)
    await asyncio.sleep(1.0)  # py-spy attaches
    started = time.perf_counter()
    await work()
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {"seconds": seconds}
    for name, (proc, out) in procs.items():
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if out.exists():
            summary = summarize(parse_raw(out.read_text()))
            summary["cpu_s"] = summary["samples"] / RATE
            result[name] = summary
        else:
            result[name] = {"error": err.decode(errors="replace")[-300:]}
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def pyinstrument_embedded(graph: str, input: Any, lines: int = 45) -> list[str]:
    """The embedded path (orchestrator, worker, client, the in-memory store in one process) under
    pyinstrument; the top of its call tree."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return ["(pyinstrument is not installed: pip install -e '.[bench]')"]

    async def run() -> None:
        async with embedded() as cluster:
            handle = await cluster.client.submit(graph, input)
            await handle.result()

    profiler = Profiler(interval=0.0005, async_mode="enabled")
    profiler.start()
    asyncio.run(run())
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    tree = text.splitlines()
    start = next((i for i, line in enumerate(tree) if line[:1].isdigit()), 0)  # past the banner
    return tree[start:start + lines]


async def redis_round_trip(url: str, count: int = 2000) -> dict[str, float]:
    """One command's round trip from asyncio redis-py (PING), in microseconds."""
    from arqgraph.storage.connection import connect

    redis = await connect(url, what="bench")
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await redis.ping()
        times.append(1e6 * (time.perf_counter() - started))
    await redis.aclose()
    return {"p50": median(times), "p99": percentile(times, 99)}


def _profile_md(title: str, prof: dict[str, Any], units: int, unit: str) -> list[str]:
    out = [f"**{title}** (py-spy, {RATE} Hz, CPU samples only; {prof['seconds']:.2f} s wall):", ""]
    for name in ("orchestrator", "worker 1", "worker 2"):
        p = prof.get(name)
        if not p:
            continue
        if "error" in p:
            out.append(f"- {name}: py-spy failed: {p['error']}")
            continue
        per = 1000 * p["cpu_s"] / units
        plural = "" if p["samples"] == 1 else "s"
        head = (f"- {name}: {p['samples']:,} busy sample{plural} = {p['cpu_s']:.2f} s = "
                f"{per:.2f} ms per {unit}")
        if p["samples"] < FEW_SAMPLES:
            out.append(f"{head}: too few samples to tell where the time goes")
            continue
        cats = ", ".join(f"{k} {v:.0%}" for k, v in list(p["categories"].items())[:8])
        funcs = ", ".join(f"`{k}` {v:.0%}" for k, v in list(p["functions"].items())[:7])
        out.append(f"{head}. Busy time by category: {cats}. Inclusive, arqgraph's own "
                   f"functions: {funcs}")
    return [*out, ""]


def profile_all(env: Env) -> list[str]:
    """Profile the chain and the fan-out on the cluster, and the chain on the embedded path."""
    cluster = env.cluster
    assert cluster is not None and cluster.orchestrator is not None
    pids = {"orchestrator": cluster.orchestrator.pid,
            **{f"worker {i + 1}": p.pid for i, p in enumerate(cluster.worker_procs)}}
    chain_runs = 3
    fan = env.sizes.fanout
    print("- profiling (py-spy, pyinstrument)", flush=True)

    async def cluster_profiles() -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
        from arqgraph.client import Client

        env.client = await Client.connect(cluster.url)
        try:
            async def chain() -> None:
                for _ in range(chain_runs):
                    await env.on_cluster("bench_chain", {})

            async def fanout() -> None:
                await env.on_cluster("bench_fanout", fanout_input(fan))

            rtt = await redis_round_trip(cluster.url)
            return await py_spy(pids, chain), await py_spy(pids, fanout), rtt
        finally:
            await env.client.close()
            env.client = None

    chain_prof, fan_prof, rtt = asyncio.run(cluster_profiles())
    steps = chain_runs * env.sizes.chain
    lines = [f"Redis round trip (PING from asyncio redis-py, loopback): p50 {rtt['p50']:.0f} us, "
             f"p99 {rtt['p99']:.0f} us.", ""]
    lines += _profile_md(f"Chain, {chain_runs} runs of {env.sizes.chain} supersteps, cluster",
                         chain_prof, steps, "superstep")
    lines += _profile_md(f"Fan-out of {fan:,} trivial Sends, cluster", fan_prof, fan, "task")
    from bench import experiments

    try:
        measured = asyncio.run(experiments.run(env.sizes.fanout_target))
    except Exception as exc:  # a failed experiment must not lose the run's results
        measured = [f"- the experiments failed: {type(exc).__name__}: {exc}"]
    lines += ["**Candidate changes measured in isolation** (`python -m bench.experiments`, own "
              "redis-server):", "", *measured, ""]
    tree = pyinstrument_embedded("bench_chain", {})
    lines += [f"**Chain on the embedded path** (pyinstrument, one run of {env.sizes.chain} "
              "supersteps, everything in one process):", "", "<details><summary>call tree "
              "(top)</summary>", "", "```", *tree, "```", "", "</details>"]
    env.profiles = {"chain": chain_prof, "fanout": fan_prof, "rtt": rtt}
    return lines
