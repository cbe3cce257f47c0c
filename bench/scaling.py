"""`python -m bench.scaling [--quick]`: what one Redis carries, and a prototype of two shards.

On a real redis-server with a real orchestrator and workers (`bench.cluster.Cluster`), it
counts what a fanned-out task, a chain superstep and a small run cost: Redis commands (those
inside scripts included), script calls, Redis CPU (INFO cpu), the time inside scripts (INFO
commandstats), bytes, and the CPU of the orchestrator and workers (/proc). A census under
MONITOR sorts the keys the work touches into the run's own hash slot and the keys every run
shares. `bench.scaling_model` turns the costs into the model of docs/scaling.md.

Then the prototype: the same runs and fan-outs placed over one shard and over two (a shard is
a redis-server with its own orchestrator and workers) by `bench.shards.ShardRouter`, with each
shard's Redis counters.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from arqgraph.client import Client
from bench.cluster import Cluster, cpu_seconds
from bench.graphs import CHAIN_LENGTH, fanout_input
from bench.scaling_model import (
    GIGABIT,
    HEADROOM,
    Cost,
    capacities,
    census,
    first_limit,
    per_second,
    workers_to_saturate,
)
from bench.shards import ShardRouter

STOP_WORD = "bench-scaling-census-end"
MONITOR_LINE = re.compile(r"\[(\d+) (.*?)\] (.*)")
MONITOR_ARG = re.compile(r'"(.*?)(?<!\\)"')


@dataclass(frozen=True)
class Sizes:
    """How much each part measures: tasks of the counted fan-out, small runs, the census's
    work (run under MONITOR, which slows Redis), and the prototype's runs and fan-outs."""

    fanout: int
    runs: int
    census_fanout: int
    census_runs: int
    shard_runs: int
    shard_fanouts: int
    shard_fanout_tasks: int
    reps: int  # of the prototype's layouts, alternating


FULL = Sizes(fanout=10_000, runs=1_000, census_fanout=500, census_runs=100, shard_runs=1_000,
             shard_fanouts=16, shard_fanout_tasks=625, reps=2)
QUICK = Sizes(fanout=2_000, runs=300, census_fanout=200, census_runs=30, shard_runs=300,
              shard_fanouts=4, shard_fanout_tasks=500, reps=1)


# -- counters --------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Counters of one shard at one moment."""

    calls: dict[str, int]
    usec: dict[str, int]
    redis_cpu: float  # INFO cpu: used_cpu_user + used_cpu_sys, seconds
    net: int
    cpu: dict[str, float]  # /proc: seconds by process group
    at: float

    @classmethod
    def take(cls, cluster: Cluster) -> Snapshot:
        stats = cluster.info("commandstats")
        cpu_info = cluster.info("cpu")
        pids = {"orchestrator": [cluster.orchestrator.pid] if cluster.orchestrator else [],
                "workers": [p.pid for p in cluster.worker_procs]}
        return cls(
            calls={k.removeprefix("cmdstat_").upper(): int(v["calls"]) for k, v in stats.items()},
            usec={k.removeprefix("cmdstat_").upper(): int(v["usec"]) for k, v in stats.items()},
            redis_cpu=float(cpu_info["used_cpu_user"]) + float(cpu_info["used_cpu_sys"]),
            net=cluster.net_bytes(),
            cpu={name: sum(cpu_seconds(pid) for pid in ps) for name, ps in pids.items()},
            at=time.perf_counter())


@dataclass
class Delta:
    """What a shard did between two snapshots (the snapshots' own INFO calls left out)."""

    calls: dict[str, int]
    script_usec: int
    redis_cpu: float
    net: int
    cpu: dict[str, float]
    seconds: float

    @classmethod
    def between(cls, a: Snapshot, b: Snapshot) -> Delta:
        calls = {k: v - a.calls.get(k, 0) for k, v in b.calls.items() if k != "INFO"}
        scripts = sum(b.usec.get(k, 0) - a.usec.get(k, 0) for k in ("EVALSHA", "EVAL"))
        return cls({k: v for k, v in calls.items() if v > 0}, scripts,
                   b.redis_cpu - a.redis_cpu, b.net - a.net,
                   {k: b.cpu[k] - a.cpu.get(k, 0.0) for k in b.cpu}, b.at - a.at)

    @property
    def commands(self) -> int:
        return sum(self.calls.values())

    def cost(self, unit: str, units: int) -> Cost:
        return Cost(unit=unit, commands=self.commands / units,
                    script_calls=(self.calls.get("EVALSHA", 0) + self.calls.get("EVAL", 0)) / units,
                    redis_cpu_us=1e6 * self.redis_cpu / units, script_us=self.script_usec / units,
                    orchestrator_cpu_us=1e6 * self.cpu["orchestrator"] / units,
                    worker_cpu_us=1e6 * self.cpu["workers"] / units, net_bytes=self.net / units,
                    wall_us=1e6 * self.seconds / units)


async def counted(clusters: Sequence[Cluster], work: Awaitable[Any]) -> list[Delta]:
    """Runs `work` and returns what each shard did meanwhile."""
    before = [Snapshot.take(c) for c in clusters]
    await work
    after = [Snapshot.take(c) for c in clusters]
    return [Delta.between(a, b) for a, b in zip(before, after, strict=True)]


# -- the workloads -----------------------------------------------------------------------------


async def fanout(client: Client, n: int, thread: str | None = None) -> None:
    config = {"configurable": {"thread_id": thread}} if thread else None
    out = await (await client.submit("bench_fanout", fanout_input(n), config)).result()
    assert out["total"] == n, out


async def chain(client: Client) -> None:
    out = await (await client.submit("bench_chain", {})).result()
    assert len(out["ts"]) == CHAIN_LENGTH, out


async def small_runs(client: Client, n: int) -> None:
    handles = await asyncio.gather(*[client.submit("bench_three", {"x": i}) for i in range(n)])
    outs = await asyncio.gather(*[h.result() for h in handles])
    assert all(o["x"] == i + 3 for i, o in enumerate(outs))


Measured = tuple[Cost, Delta, int]
"""A cost per unit, what Redis did for all the units, and how many units."""


async def costs(cluster: Cluster, client: Client, sizes: Sizes) -> list[Measured]:
    """A fanned-out task, a chain superstep and a small run, each from its own counted run,
    with what Redis did for it."""
    await fanout(client, 200)  # warm: the workers' caches, the scripts loaded
    await small_runs(client, 50)
    (fan,) = await counted([cluster], fanout(client, sizes.fanout))
    (link,) = await counted([cluster], chain(client))
    (runs,) = await counted([cluster], small_runs(client, sizes.runs))
    return [(fan.cost("fanned-out task", sizes.fanout), fan, sizes.fanout),
            (link.cost("chain superstep", CHAIN_LENGTH), link, CHAIN_LENGTH),
            (runs.cost("run of 3 nodes", sizes.runs), runs, sizes.runs)]


# -- the census of keys under MONITOR --------------------------------------------------------


def _monitor(cluster: Cluster, seen: list[list[str]], ready: threading.Event) -> None:
    """Collects every command (those inside scripts too) until the stop word comes by."""
    with cluster.redis().monitor() as monitor:
        ready.set()
        while True:
            line = monitor.connection.read_response()
            text = line.decode(errors="replace") if isinstance(line, bytes) else str(line)
            match = MONITOR_LINE.match(text.split(" ", 1)[1])
            if match is None:
                continue
            args = [a.replace('\\"', '"') for a in MONITOR_ARG.findall(match.group(3))]
            if STOP_WORD in args:
                return
            seen.append(args)


async def key_census(cluster: Cluster, client: Client, work: Callable[[], Awaitable[Any]],
                     units: int) -> dict[str, float]:
    """Key accesses per unit by class of key, counted under MONITOR during `work`."""
    seen: list[list[str]] = []
    ready = threading.Event()
    thread = threading.Thread(target=_monitor, args=(cluster, seen, ready), daemon=True)
    thread.start()
    ready.wait(10)
    await work()
    cluster.redis().echo(STOP_WORD)
    thread.join(30)
    return {k: v / units for k, v in census(seen).most_common()}


# -- the two-shard prototype -------------------------------------------------------------------


@dataclass
class ShardRun:
    shards: int
    workers_each: int
    seconds: dict[str, float] = field(default_factory=dict)
    placed: dict[str, list[int]] = field(default_factory=dict)
    deltas: dict[str, list[Delta]] = field(default_factory=dict)


async def shard_workloads(clusters: Sequence[Cluster], sizes: Sizes) -> ShardRun:
    """Small runs, then several fan-outs, each on a thread of its own, through the router."""
    result = ShardRun(len(clusters), len(clusters[0].worker_procs))
    router = await ShardRouter.connect([c.url for c in clusters])
    try:
        for client in router.clients:  # warm each shard
            await fanout(client, 100)
            await small_runs(client, 30)

        async def runs() -> None:
            placed = await asyncio.gather(*[router.submit("bench_three", {"x": i}, _thread(i))
                                            for i in range(sizes.shard_runs)])
            result.placed["runs"] = _counts(len(clusters), [s for s, _ in placed])
            outs = await asyncio.gather(*[h.result() for _, h in placed])
            assert all(o["x"] == i + 3 for i, o in enumerate(outs))

        async def fanouts() -> None:
            n = sizes.shard_fanout_tasks
            placed = await asyncio.gather(*[
                router.submit("bench_fanout", fanout_input(n), _thread(10_000_000 + i))
                for i in range(sizes.shard_fanouts)])
            result.placed["fanouts"] = _counts(len(clusters), [s for s, _ in placed])
            outs = await asyncio.gather(*[h.result() for _, h in placed])
            assert all(o["total"] == n for o in outs)

        for name, work in (("runs", runs), ("fanouts", fanouts)):
            started = time.perf_counter()
            result.deltas[name] = await counted(clusters, work())
            result.seconds[name] = time.perf_counter() - started
    finally:
        await router.close()
    return result


def _thread(i: int) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"scaling-{time.time_ns()}-{i}"}}


def _counts(shards: int, placed: list[int]) -> list[int]:
    return [placed.count(i) for i in range(shards)]


# -- the report --------------------------------------------------------------------------------


def cost_table(cost_rows: Sequence[Cost]) -> str:
    head = ("| per | Redis commands | script calls | Redis CPU | in scripts | orchestrator CPU "
            "| workers' CPU | bytes in + out | wall |\n|---|---|---|---|---|---|---|---|---|")
    rows = [f"| {c.unit} | {c.commands:.1f} | {c.script_calls:.2f} | {c.redis_cpu_us:.0f} us "
            f"| {c.script_us:.0f} us | {c.orchestrator_cpu_us:.0f} us | {c.worker_cpu_us:.0f} us "
            f"| {c.net_bytes:,.0f} | {c.wall_us:.0f} us |" for c in cost_rows]
    return "\n".join([head, *rows])


def commands_table(measured: Sequence[Measured], most: int = 16) -> str:
    """Redis commands per unit, command by command (those inside scripts too, as INFO
    commandstats counts them): which commands are per task and which per batch."""
    def per(name: str) -> list[float]:
        return [d.calls.get(name, 0) / units for _, d, units in measured]

    names = sorted({k for _, d, _ in measured for k in d.calls}, key=lambda k: -max(per(k)))
    head = ("| command | " + " | ".join(c.unit for c, _, _ in measured) + " |\n|---|"
            + "---|" * len(measured))
    rows = [f"| {k} | " + " | ".join(f"{v:.2f}" for v in per(k)) + " |" for k in names[:most]]
    totals = "| all | " + " | ".join(f"{c.commands:.2f}" for c, _, _ in measured) + " |"
    return "\n".join([head, *rows, totals])


def model_table(cost_rows: Sequence[Cost], per_worker: Sequence[float] = (1000, 100),
                orchestrators: int = 1) -> str:
    """The model of each cost: `per_worker` are the rates of work a worker does a second
    (units a second) to count the workers that fill one Redis core with."""
    rates = " / ".join(f"{r:,.0f}" for r in per_worker)
    head = ("| per | one Redis core carries | at 70 % busy | one orchestrator core | "
            f"one worker core (trivial nodes) | workers to saturate Redis at {rates} a s "
            f"each | runs out first ({orchestrators} orchestrator(s)) |\n"
            "|---|---|---|---|---|---|---|")
    rows = []
    for c in cost_rows:
        redis, worker = per_second(c.redis_cpu_us), per_second(c.worker_cpu_us)
        limit, _ = first_limit(capacities(c, orchestrators=orchestrators))
        workers = " / ".join(str(workers_to_saturate(redis, r)) for r in per_worker)
        rows.append(
            f"| {c.unit} | {redis:,.0f}/s | {redis * HEADROOM:,.0f}/s "
            f"| {rate(per_second(c.orchestrator_cpu_us))} | {rate(worker)} | {workers} "
            f"| {limit} |")
    return "\n".join([head, *rows])


def rate(value: float) -> str:
    """A rate a second; "unbounded" when nothing was counted (no CPU spent on it)."""
    return "unbounded" if value == float("inf") else f"{value:,.0f}/s"


def census_table(name: str, per_unit: dict[str, float]) -> str:
    lines = [f"| {name}: key accesses per unit | |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in per_unit.items()]
    return "\n".join(lines)


def shard_table(runs: Sequence[ShardRun], sizes: Sizes) -> str:
    head = ("| layout | workload | wall | rate | placed per shard | Redis commands per shard "
            "| Redis CPU per shard | Redis CPU per unit, all shards |\n|---|---|---|---|---|---|---|---|")
    rows = []
    for r in runs:
        layout = f"{r.shards} shard{'s' if r.shards > 1 else ''} x {r.workers_each} worker(s)"
        for name, units, unit in (("runs", sizes.shard_runs, "runs/s"),
                                  ("fanouts", sizes.shard_fanouts * sizes.shard_fanout_tasks,
                                   "tasks/s")):
            secs, deltas = r.seconds[name], r.deltas[name]
            rows.append(
                f"| {layout} | {name} | {secs:.2f} s | {units / secs:,.0f} {unit} "
                f"| {' / '.join(map(str, r.placed[name]))} "
                f"| {' / '.join(f'{d.commands:,}' for d in deltas)} "
                f"| {' / '.join(f'{d.redis_cpu:.2f} s' for d in deltas)} "
                f"| {1e6 * sum(d.redis_cpu for d in deltas) / units:.0f} us |")
    return "\n".join([head, *rows])


async def cost_report(cluster: Cluster, sizes: Sizes, model: dict[str, Any]) -> list[str]:
    """The costs per unit, the model made of them, and the census of keys."""
    client = await Client.connect(cluster.url)
    try:
        measured = await costs(cluster, client, sizes)
        rows = [c for c, _, _ in measured]
        out = ["## Costs (one shard: 1 orchestrator, 2 workers)", cost_table(rows), "",
               "## Redis commands per unit, by command (INFO commandstats)",
               commands_table(measured), "",
               "## Model", model_table(rows, **model), "",
               f"(network: a 10 Gbit/s link, {10 * GIGABIT / 1e6:,.0f} MB/s, in + out)", ""]
        fan = await key_census(cluster, client, lambda: fanout(client, sizes.census_fanout),
                               sizes.census_fanout)
        link = await key_census(cluster, client, lambda: chain(client), CHAIN_LENGTH)
        small = await key_census(cluster, client, lambda: small_runs(client, sizes.census_runs),
                                 sizes.census_runs)
    finally:
        await client.close()
    return [*out, "## Census of keys (under MONITOR)", census_table("fanned-out task", fan), "",
            census_table("chain superstep", link), "", census_table("run of 3 nodes", small), ""]


async def prototype(one: Cluster, sizes: Sizes) -> list[str]:
    """One shard against two, alternating, so that both layouts see the same minutes of a
    shared machine. The two shards have a worker each: as many workers as the one shard."""
    pair = [Cluster(workers=1), Cluster(workers=1)]
    try:
        for c in pair:
            c.start()
        measured = []
        for _ in range(sizes.reps):
            measured.append(await shard_workloads([one], sizes))
            measured.append(await shard_workloads(pair, sizes))
    finally:
        for c in pair:
            c.stop()
    return ["## Prototype: one shard against two (alternating)", shard_table(measured, sizes)]


async def measure(sizes: Sizes, shards: bool, model: dict[str, Any]) -> str:
    with Cluster(workers=2) as cluster:
        out = await cost_report(cluster, sizes, model)
        print("\n".join(out), flush=True)
        if shards:
            out += await prototype(cluster, sizes)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes: about 2 minutes")
    parser.add_argument("--no-shards", action="store_true", help="skip the two-shard prototype")
    parser.add_argument("--per-worker", type=float, nargs="+", default=[1000.0, 100.0],
                        metavar="RATE", help="tasks a second one worker does, for the model's "
                        "count of workers that fill one Redis (default: 1000 100)")
    parser.add_argument("--orchestrators", type=int, default=1,
                        help="orchestrators sharing a shard's work, for the model (default 1)")
    args = parser.parse_args(argv)
    model = {"per_worker": args.per_worker, "orchestrators": args.orchestrators}
    sizes = QUICK if args.quick else FULL
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = asyncio.run(measure(sizes, not args.no_shards, model))
    print(f"\n# python -m bench.scaling{' --quick' if args.quick else ''}, {started}\n")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
