"""`python -m bench [--quick] [--only NAME ...] [--write docs/benchmarks.md] [--profile]`.

Starts its own redis-server (free port, AOF everysec, temp dir), one orchestrator and two worker
processes, runs every scenario on each backend, prints one table, and with --write regenerates
the benchmarks document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from bench import metrics_cost, resources, scenarios, serving
from bench.cluster import WORKER_CONCURRENCY, Cluster
from bench.env import FULL, QUICK, Env
from bench.model import Result, Scenario
from bench.report import describe_machine, dump, load, markdown, sanitize, text_table

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("idle", "an idle pool of 2 workers and an orchestrator, beside the peers' pools",
             "< 3 Redis commands/s, and fewer commands and less CPU than every peer",
             resources.idle),
    Scenario("chain", "chain of 200 trivial async nodes, one run: time per superstep",
             "p50 <= 1.0 ms, p99 <= 3 ms", scenarios.chain),
    Scenario("fanout", "one run fanning out 10,000 trivial Send tasks and reducing them",
             "<= 2.0 s (>= 5,000 tasks/s), faster than in-process LangGraph", scenarios.fanout),
    Scenario("io", "2,000 Send tasks that each await 200 ms of I/O", "<= 0.6 s wall",
             scenarios.io_fanout),
    Scenario("screening", "the screening example (2 s, then 3 s and 2 s in parallel)",
             "<= 5.05 s", scenarios.screening),
    Scenario("runs", "1,000 runs of a 3-node graph submitted at once by a producer",
             ">= in-process LangGraph's runs/s (1,000 concurrent ainvoke), more than every "
             "distributed peer's", scenarios.runs),
    Scenario("cpu", "CPU-bound sync nodes (5 ms of Python each), 1 vs 2 worker processes",
             ">= 1.8x throughput with 2", scenarios.cpu),
    Scenario("blob", "fan-out of 1,000 tasks over a 1 MB state",
             "the state crosses the network O(workers) times per superstep, not O(tasks)",
             resources.blob),
    Scenario("inflight", "10,000 runs in flight",
             "orchestrator RSS <= 300 MB; Redis memory per finished run reported",
             resources.inflight),
    Scenario("serve", "1,000 runs of a 3-node graph waited at once through arqgraph serve",
             ">= 80 % of a direct Client's runs/s", serving.serve),
    Scenario("metrics", "the runs and fan-out workloads with --metrics-port and without, "
             "alternating", "on/off throughput >= 0.95 (no measurable loss)",
             metrics_cost.metrics),
)
NAMES = tuple(s.name for s in SCENARIOS)
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark arqgraph (cluster of real processes, embedded) against in-process "
        "LangGraph and plain arq. Starts its own redis-server on a free port.")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and one repetition: under a minute")
    parser.add_argument("--only", action="append", choices=NAMES, metavar="NAME", default=[],
                        help=f"run only this scenario (repeatable): {', '.join(NAMES)}")
    parser.add_argument("--write", type=Path, metavar="PATH",
                        help="regenerate this markdown file (docs/benchmarks.md) from the results")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the chain and the fan-out (py-spy on the cluster's "
                        "processes, pyinstrument on the embedded path) for the document")
    parser.add_argument("--concurrency", type=int, default=WORKER_CONCURRENCY,
                        help="--concurrency of the arqgraph workers (nodes at once, and threads "
                        f"for sync nodes; {WORKER_CONCURRENCY})")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also save the results as JSON (for --render)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="run nothing: regenerate --write's document from saved --json results")
    parser.add_argument("--noise", default="",
                        help="a note on the machine's load to print in the document")
    return parser


def selected(only: Sequence[str]) -> list[Scenario]:
    return [s for s in SCENARIOS if not only or s.name in only]


async def run_all(env: Env, chosen: Sequence[Scenario]) -> list[Result]:
    from arqgraph.client import Client

    results = []
    if env.cluster is not None:
        env.client = await Client.connect(env.cluster.url)
    try:
        for scenario in chosen:
            print(f"- {scenario.name}: {scenario.title}", flush=True)
            started = time.perf_counter()
            result = (await scenario.run(env)).finish()
            results.append(result)
            print(f"  {'MET' if result.met else 'NOT MET'}: {result.verdict} "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)
    finally:
        if env.client is not None:
            await env.client.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.render:
        results, machine, command, profile, noise = load(json.loads(args.render.read_text()))
        print(text_table(results))
        if args.write:
            write(args.write, markdown(results, SCENARIOS, machine, command, profile, noise))
        return 0
    chosen = selected(args.only)
    env = Env(QUICK if args.quick else FULL, quick=args.quick, profile=args.profile)
    machine = describe_machine()
    started = time.perf_counter()
    profile_md: list[str] = []
    cluster = Cluster(workers=2, concurrency=args.concurrency)
    print(f"bench: starting redis-server, 1 orchestrator, 2 workers in {cluster.workdir}", flush=True)
    with cluster:
        env.cluster = cluster
        if args.profile:  # first, on a fresh cluster with nothing else in flight
            from bench.profiling import profile_all

            profile_md = profile_all(env)
        results = asyncio.run(run_all(env, chosen))
    print()
    print(text_table(results))
    print(f"\nbench: {time.perf_counter() - started:.0f} s in all", flush=True)
    sizes = ", ".join(f"{k} {v}" for k, v in asdict(env.sizes).items())
    noise = " ".join(x for x in (args.noise, f"Sizes of this run: {sizes}.") if x)
    command = "python -m bench" + (" --quick" if args.quick else "") + (
        "".join(f" --only {n}" for n in args.only)) + (" --profile" if args.profile else "") + (
        f" --concurrency {args.concurrency}" if args.concurrency != WORKER_CONCURRENCY else "")
    if args.json:
        data = dump(results, machine, command, profile_md, noise)
        args.json.write_text(sanitize(json.dumps(data, indent=1, default=str)))
    if args.write:
        write(args.write, markdown(results, SCENARIOS, machine, command, profile_md, noise))
    return 0


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"bench: wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
