"""The distributed peers beside arqgraph, in the same run: Celery and Dramatiq on the bench's own
Redis, Dask distributed and Ray on schedulers of their own. Each peer is two worker processes,
and its scheduler where it has one, in its normal configuration. A peer whose package is not
installed is skipped with a line that says so (`pip install -e '.[peers]'`).

Two measures: an idle window (Redis commands/s from INFO commandstats, CPU % of every process
of the peer, children included), and 1,000 concurrent runs of 3 trivial sequential tasks, each
task a job, as a 3-node graph run is on arqgraph. The runs are timed by a producer process of
their own: `python -m bench.peers runs PEER N ADDRESS` prints the seconds.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.cluster import ROOT, Cluster, Proc, cpu_seconds, free_port
from bench.model import Row, median

START_LIMIT = 120.0  # seconds a peer may take to come up on 2 loaded cores (Ray is the slowest)
WORKERS = 2


@dataclass
class Peer:
    name: str
    package: str  # what must import for the peer to run
    redis: bool  # whether it works through the bench's Redis (else: no Redis commands)
    start: Callable[[PeerPool], None]  # its processes, until they are ready

    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None


@dataclass
class PeerPool:
    """The processes of one peer on the bench's cluster."""

    cluster: Cluster
    peer: Peer
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    address: str = ""  # what a producer connects to

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.cluster.workdir / f"{self.peer.name}-{name}-{len(self.procs)}.log"
        env = {**os.environ, "BENCH_PEER_REDIS": self.cluster.url, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def wait_logged(self, text: str, count: int) -> None:
        """Until `count` of the logs say `text`."""
        deadline = time.monotonic() + START_LIMIT
        while sum(text in log.read_text(errors="replace") for log in self.logs) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                tails = "\n".join(log.read_text(errors="replace")[-2000:] for log in self.logs)
                raise RuntimeError(f"bench: {self.peer.name} did not start:\n{tails}")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:  # (each its own session: its children go with it)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:  # (Ray drains for 30 s on a SIGTERM: the bench need not wait)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def cpu_by_name(self) -> dict[str, float]:
        """CPU seconds of all its processes, children included."""
        return {"all": sum(_cpu(pid) for pid in _family([p.pid for p in self.procs]))}


def _cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:  # (gone meanwhile)
        return 0.0


def _family(roots: list[int]) -> list[int]:
    """The processes `roots` and all their descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(text[text.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


# -- how each peer starts ---------------------------------------------------------------------


def _celery(pool: PeerPool) -> None:
    for i in range(WORKERS):  # its default pool: prefork, a child per core
        pool.spawn("worker", [sys.executable, "-m", "celery", "-A", "bench.peer_celery", "worker",
                              "--loglevel", "INFO", "-n", f"w{i}@%h"])
    pool.wait_logged(" ready.", WORKERS)


def _dramatiq(pool: PeerPool) -> None:
    for _ in range(WORKERS):  # one process of its default 8 threads each
        pool.spawn("worker", [sys.executable, "-m", "dramatiq", "bench.peer_dramatiq",
                              "--processes", "1", "--threads", "8"])
    pool.wait_logged("is ready for action", WORKERS)


def _dask(pool: PeerPool) -> None:
    port = free_port()
    pool.address = f"tcp://127.0.0.1:{port}"
    pool.spawn("scheduler", [sys.executable, "-m", "distributed.cli.dask_scheduler",
                             "--host", "127.0.0.1", "--port", str(port),
                             "--dashboard-address", ":0"])
    pool.wait_logged("Scheduler at", 1)
    for _ in range(WORKERS):
        pool.spawn("worker", [sys.executable, "-m", "distributed.cli.dask_worker", pool.address,
                              "--nworkers", "1", "--nthreads", "8", "--dashboard-address", ":0"])
    pool.wait_logged("Starting established connection", WORKERS)


def _ray(pool: PeerPool) -> None:
    """A head node of two CPUs, so two worker processes, started by a driver that waits."""
    port = free_port()
    pool.address = f"127.0.0.1:{port}"
    pool.spawn("head", ["ray", "start", "--head", "--block", "--port", str(port),
                        "--num-cpus", str(WORKERS), "--include-dashboard", "false",
                        "--disable-usage-stats"])
    pool.wait_logged("Ray runtime started", 1)


PEERS = (
    Peer("celery", "celery", True, _celery),
    Peer("dramatiq", "dramatiq", True, _dramatiq),
    Peer("dask", "distributed", False, _dask),
    Peer("ray", "ray", False, _ray),
)


def installed() -> list[Peer]:
    """The peers that can run here; a line for each that cannot."""
    found = []
    for peer in PEERS:
        if peer.installed():
            found.append(peer)
        else:
            print(f"    {peer.name}: skipped, its package {peer.package!r} is not installed "
                  "(pip install -e '.[peers]')", flush=True)
    return found


def started(cluster: Cluster, peer: Peer) -> PeerPool:
    pool = PeerPool(cluster, peer)
    try:
        peer.start(pool)
    except BaseException:
        pool.stop()
        raise
    return pool


def label(peer: Peer) -> str:
    return {"dask": "dask: scheduler + 2 workers",
            "ray": "ray: head of 2 CPUs"}.get(peer.name, f"{peer.name}: 2 workers")


# -- idle, beside arqgraph's pool ---------------------------------------------------------------


def idle_rows(cluster: Cluster, frozen: list[Proc], window: float, settle: float) -> list[Row]:
    """Each installed peer's CPU % and Redis commands/s over `window` of doing nothing, once
    `settle` seconds after it came up; `frozen` (arqgraph's pool) stopped meanwhile with
    SIGSTOP: Redis's counters are global, so only what runs makes commands."""
    rows = []
    for peer in installed():
        pool = started(cluster, peer)
        try:
            time.sleep(settle)
            for proc in frozen:
                proc.pause()
            try:
                cpu, commands = cluster.idle_window(pool.cpu_by_name, window)
            finally:
                for proc in frozen:
                    proc.resume()
            count = len(_family([p.pid for p in pool.procs]))
        finally:
            pool.stop()
        rows.append(Row(label(peer), "CPU", "%", [cpu["all"]], detail=f"{count} processes" + (
            "" if peer.redis else "; no Redis: a scheduler of its own")))
        if peer.redis:
            busiest = sorted(commands.items(), key=lambda kv: -kv[1])[:3]
            rows.append(Row(label(peer), "Redis commands/s", "cmd/s", [sum(commands.values())],
                            detail=", ".join(f"{k} {v:.2f}" for k, v in busiest)))
    return rows


# -- small runs, beside arqgraph's ------------------------------------------------------------


def runs_rows(cluster: Cluster, n: int, reps: int) -> list[Row]:
    """Each installed peer's runs/s for `n` concurrent runs of 3 sequential tasks."""
    rows = []
    for peer in installed():
        pool = started(cluster, peer)
        try:
            secs = [runs_seconds(pool, n) for _ in range(reps)]
        finally:
            pool.stop()
        rows.append(Row(label(peer), "runs/s", "runs/s", [n / s for s in secs],
                        higher_is_better=True, detail=f"{median(secs):.2f} s for {n:,}"))
    return rows


# -- the producers: 1,000 runs of 3 trivial sequential tasks ----------------------------------


def runs_seconds(pool: PeerPool, n: int) -> float:
    """The seconds `n` concurrent runs take on the peer, timed by a producer process."""
    argv = [sys.executable, "-m", "bench.peers", "runs", pool.peer.name, str(n),
            pool.address or pool.cluster.url]
    env = {**os.environ, "BENCH_PEER_REDIS": pool.cluster.url,
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench: {pool.peer.name}'s runs failed:\n"
                           f"{done.stderr.decode(errors='replace')[-3000:]}")
    return float(json.loads(done.stdout.decode().strip().splitlines()[-1])["seconds"])


def _celery_runs(n: int, _: str) -> float:
    from celery import chain

    from bench.peer_celery import step
    started = time.perf_counter()
    results = [chain(step.s(i), step.s(), step.s()).apply_async() for i in range(n)]
    assert [r.get(timeout=600) for r in results] == [i + 3 for i in range(n)]
    return time.perf_counter() - started


def _dramatiq_runs(n: int, _: str) -> float:
    from dramatiq import pipeline

    from bench.peer_dramatiq import step
    started = time.perf_counter()
    # (each message of a pipeline takes the result of the one before as its argument)
    pipes = [pipeline([step.message(i), step.message(), step.message()]).run()  # type: ignore[call-arg]
             for i in range(n)]
    assert [p.get_result(block=True, timeout=600_000) for p in pipes] == [i + 3 for i in range(n)]
    return time.perf_counter() - started


def _dask_runs(n: int, address: str) -> float:
    from distributed import Client

    def step(x: int) -> int:
        return x + 1

    with Client(address) as client:
        client.wait_for_workers(WORKERS)
        started = time.perf_counter()
        ends = []
        for i in range(n):  # (pure=False: each task a job of its own, as a node's is)
            first = client.submit(step, i, pure=False)
            ends.append(client.submit(step, client.submit(step, first, pure=False), pure=False))
        assert client.gather(ends) == [i + 3 for i in range(n)]
        return time.perf_counter() - started


def _ray_runs(n: int, address: str) -> float:
    import ray

    @ray.remote
    def step(x: int) -> int:
        return x + 1

    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    ray.get(step.remote(0))  # (the workers' first task imports the function: not timed)
    started = time.perf_counter()
    ends = [step.remote(step.remote(step.remote(i))) for i in range(n)]
    assert ray.get(ends) == [i + 3 for i in range(n)]
    seconds = time.perf_counter() - started
    ray.shutdown()
    return seconds


PRODUCERS: dict[str, Callable[[int, str], float]] = {
    "celery": _celery_runs, "dramatiq": _dramatiq_runs, "dask": _dask_runs, "ray": _ray_runs}


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] != "runs" or argv[1] not in PRODUCERS:
        print(f"usage: python -m bench.peers runs {{{','.join(PRODUCERS)}}} N ADDRESS",
              file=sys.stderr)
        return 2
    seconds = PRODUCERS[argv[1]](int(argv[2]), argv[3])
    print(json.dumps({"seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
