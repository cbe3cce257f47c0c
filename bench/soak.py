"""A soak under random faults: `python -m bench.soak` (or `scripts/soak`).

Hundreds of fan-out runs go through a cluster (two orchestrators, three workers, a redis-server
with AOF fsynced every second) while, as they are submitted, at random intervals, a worker or
an orchestrator is killed -9 and a new one started, a worker is stopped with SIGTERM and
replaced, or redis-server is killed -9 and restarted on its AOF. With `--sentinel`, the cluster
is on a master, its replica and a sentinel, and the Redis fault is a failover instead: the
master is killed -9 and the sentinel promotes the replica (which may lack the last writes);
the old master comes back as the new one's replica (bench/failover.py). Every run must end with
its fan-out applied once: the report counts runs right, lost (failed, or not ended in time) and
doubled (an update applied twice), and the runs submitted again (same run id) because Redis
lost their creation (AOF fsync every second loses up to a second of acknowledged writes, and a
failover what the replica had not received).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from arqgraph.client import Client
from arqgraph.errors import RunNotFoundError
from bench.cluster import REDIS_ARGS, Cluster, Proc
from bench.failover import Sentinels
from bench.graphs import fanout_input

GRAPH = "bench_fanout"
FAN = 3  # Sends per run; each adds 1 to `total`: a doubled update shows as total > FAN
NODE_SLEEP = 0.2  # seconds each Send sleeps: faults land on running nodes
FAULTS = ("kill -9 worker", "SIGTERM worker", "kill -9 orchestrator", "kill -9 redis-server")
SENTINEL_FAULTS = (*FAULTS[:3], "failover: kill -9 master")


class Soak:
    """A cluster, its faults, and the runs submitted to it."""

    def __init__(self, seed: int, sentinel: bool = False, lease: float = 0.0) -> None:
        self.random = random.Random(seed)
        order = list(SENTINEL_FAULTS if sentinel else FAULTS)
        self.random.shuffle(order)
        self.next_faults = itertools.cycle(order)  # (every kind, in turn)
        self.cluster = Cluster(workers=3, concurrency=50, lease=lease)
        self.orchestrators: list[Proc] = []
        self.faults: Counter[str] = Counter()
        self.sentinel = sentinel
        self.sentinels: Sentinels | None = None

    def start(self) -> None:
        self.cluster.start_redis()
        if self.sentinel:
            self.sentinels = Sentinels(self.cluster)
        self.cluster.start_pool()
        assert self.cluster.orchestrator is not None
        self.orchestrators = [self.cluster.orchestrator, self._orchestrator()]

    def _orchestrator(self) -> Proc:
        return self.cluster._spawn("orchestrator", ["orchestrator", "bench.graphs:GRAPHS",
                                                    "--redis", self.cluster.url,
                                                    *(self.cluster.sweep_flag()
                                                      or ("--sweep-interval", "1"))])

    def fault(self) -> None:
        """One fault, chosen at random; what it killed is replaced at once."""
        name = next(self.next_faults)
        self.faults[name] += 1
        if name == "kill -9 redis-server":
            self._restart_redis()
            return
        if self.sentinels is not None and name == SENTINEL_FAULTS[-1]:
            self.sentinels.fail_over()
            return
        procs = self.cluster.worker_procs if "worker" in name else self.orchestrators
        victim = procs.pop(self.random.randrange(len(procs)))
        if name == "SIGTERM worker":
            victim.popen.send_signal(signal.SIGTERM)
        else:
            victim.popen.kill()
        if "worker" in name:
            self.cluster.add_worker()  # (it lists itself)
        else:
            procs.append(self._orchestrator())

    def _restart_redis(self) -> None:
        process = self.cluster.redis_proc
        assert process is not None
        argv = [str(arg) for arg in process.args]  # type: ignore[union-attr]
        process.kill()
        process.wait()
        with open(self.cluster.workdir / "redis.log", "ab") as log:
            self.cluster.redis_proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        for proc in self.orchestrators:  # (the first may have been killed and replaced)
            if proc is not self.cluster.orchestrator:
                proc.stop()
        self.cluster.stop_pool()
        if self.sentinels is not None:
            self.sentinels.stop()
        self.cluster.stop()


def verdict(result: Any) -> str:
    if not isinstance(result, dict) or not result.get("done"):
        return "lost"
    total = int(result.get("total", 0))
    return "right" if total == FAN else "doubled" if total > FAN else "lost"


async def soak(
    runs: int, seconds: float, seed: int, fault_every: tuple[float, float] = (0.5, 2.0),
    sentinel: bool = False, lease: float = 0.0,
) -> dict[str, Any]:
    """Submit `runs` runs, ten a second (over half of `seconds` at most), under faults (one
    every `fault_every` seconds after the last one ended, at random, while runs are submitted
    and until every kind happened once), then wait for their ends until `seconds` have passed;
    the tally and the faults. `lease`: the workers' lease, when not the default (the short
    form re-drives sooner)."""
    cluster = Soak(seed, sentinel, lease)
    cluster.start()
    client = await Client.connect(cluster.cluster.url, connect_timeout=30, submit_retry=30)
    started = time.monotonic()
    deadline = started + seconds
    try:
        submitting = True

        kinds = len(SENTINEL_FAULTS if sentinel else FAULTS)

        async def faults() -> None:
            # (while runs are submitted, and on until every kind happened once: a failover takes
            # seconds, and a short soak must not end before the others had their turn)
            while submitting or len(cluster.faults) < kinds:
                await asyncio.sleep(cluster.random.uniform(*fault_every))
                await asyncio.to_thread(cluster.fault)

        injecting = asyncio.create_task(faults())
        def submit(i: int) -> Any:
            return client.submit(GRAPH, fanout_input(FAN, sleep=NODE_SLEEP),
                                 run_id=f"soak-{seed}-{i}")

        handles, resubmitted = [], [0]
        for i in range(runs):
            handles.append(await submit(i))
            await asyncio.sleep(min(0.1, seconds / 2 / runs))
        submitting = False  # (then the cluster recovers: every run must end right)
        await injecting  # (a fault under way ends first: its thread cannot be cancelled)

        async def outcome(i: int, handle: Any) -> str:
            for _ in range(3):
                try:
                    return verdict(await handle.result(
                        timeout=max(deadline - time.monotonic(), 1)))
                except RunNotFoundError:  # its creation was in the second of writes a killed
                    resubmitted[0] += 1   # redis-server lost: submitted again, as a producer
                    handle = await submit(i)  # does (the same run id: never two runs)
                except Exception:
                    return "lost"
            return "lost"

        tally = Counter(await asyncio.gather(*(outcome(i, h) for i, h in enumerate(handles))))
    finally:
        await client.close()
        cluster.stop()
    return {"runs": runs, "seconds": round(time.monotonic() - started, 1), "seed": seed,
            "right": tally["right"], "lost": tally["lost"], "doubled": tally["doubled"],
            "resubmitted": resubmitted[0], "faults": dict(cluster.faults),
            "redis": " ".join(REDIS_ARGS) + (" + a replica and a sentinel" if sentinel else "")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=50.0,
                        help="the whole soak's bound: runs not ended by then count as lost")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--sentinel", action="store_true",
                        help="Redis through Sentinel, failed over instead of restarted")
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args.runs, args.seconds, args.seed, sentinel=args.sentinel))
    print(json.dumps(report))
    return 0 if report["right"] == report["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
