"""The benchmark's own cluster: a redis-server on a free port with production persistence (AOF,
fsync every second) in a temp dir, one orchestrator and N worker processes, and, when a scenario
asks, plain arq worker processes (`bench.plain_arq`) on a queue of their own.

Also the measuring tools that need no library: CPU time and RSS of a process from /proc, and
Redis's own counters (INFO stats, commandstats, memory).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from arqgraph import protocol
from bench.graphs import SPECS

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_PORT = 6379
REDIS_ARGS = ("--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Worker flags for latency: new jobs wake workers through the wake-up list at once, so the poll
# delay is only the fallback (the default 0.5 s). Concurrency high enough for 2,000 sleeping Sends.
WORKER_CONCURRENCY = 1000
POLL_DELAY = 0.5
ARQ_POLL_DELAY = 0.002  # plain arq polls: this is what buys it latency (see bench/plain_arq.py)
ARQ_QUEUE = "bench:arq"


def free_port() -> int:
    """A free local port for a redis-server of our own, never the default one (where a Redis
    the machine runs may be down right now and come back)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != DEFAULT_REDIS_PORT:
            return port


# -- processes ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (from /proc/<pid>/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Proc:
    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def head(self, chars: int = 20_000) -> str:
        if not self.log.exists():
            return ""
        with open(self.log, errors="replace") as f:
            return f.read(chars)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Cluster:
    """redis-server + 1 orchestrator + `workers` workers, all started by `start()`."""

    workers: int = 2
    concurrency: int = WORKER_CONCURRENCY
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="arqgraph-bench-")))
    port: int = 0
    redis_proc: subprocess.Popen[bytes] | None = None
    orchestrator: Proc | None = None
    worker_procs: list[Proc] = field(default_factory=list)
    arq_procs: list[Proc] = field(default_factory=list)
    worker_concurrency: int = 0  # the workers' --concurrency when not `concurrency` (0)
    metrics: bool = False  # whether the orchestrator and workers serve --metrics-port
    metrics_ports: dict[int, int] = field(default_factory=dict)  # pid -> its metrics port
    sentinel_url: str = ""  # the URL processes are given, when through Sentinel (bench.failover)
    lease: float = 0.0  # the workers' --lease, and the orchestrator's sweep interval half of it;
    #                     0: the defaults (a short lease re-drives a killed worker's jobs sooner)
    _count: int = 0

    @property
    def url(self) -> str:
        return self.sentinel_url or f"redis://127.0.0.1:{self.port}/0"

    def redis(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)

    # -- lifecycle --

    def start(self) -> Cluster:
        self.start_redis()
        self.start_pool()
        return self

    def start_pool(self) -> None:
        self.orchestrator = self._spawn("orchestrator", ["orchestrator", *SPECS, "--redis",
                                                         self.url, *self._metrics_flag(),
                                                         *self.sweep_flag()])
        for _ in range(self.workers):
            self.add_worker()
        self.wait_ready()

    def set_metrics(self, on: bool) -> None:
        """Restart the orchestrator and the workers with --metrics-port (`on`) or without."""
        if on == self.metrics and self.orchestrator is not None:
            return
        self.stop_pool()
        self.metrics = on
        self.start_pool()

    def sweep_flag(self) -> tuple[str, ...]:
        """The orchestrator's --sweep-interval under a short lease (none: its default)."""
        return ("--sweep-interval", str(self.lease / 2)) if self.lease else ()

    def _metrics_flag(self) -> list[str]:
        return ["--metrics-port", str(free_port())] if self.metrics else []

    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("bench: redis-server is not installed (apt-get install redis-server)")
        for _ in range(5):
            self.port = free_port()
            argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", *REDIS_ARGS,
                    "--dir", str(self.workdir), "--daemonize", "no", "--maxclients", "20000"]
            log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - handed to the child
            self.redis_proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.redis_proc.poll() is None:
                try:
                    if self.redis().ping():
                        return
                except redis.exceptions.ConnectionError:
                    time.sleep(0.02)
            self.redis_proc.kill()
            self.redis_proc.wait()
        raise SystemExit("bench: redis-server did not start; see " + str(self.workdir / "redis.log"))

    def _spawn(self, name: str, args: Sequence[str], module: str = "arqgraph.cli") -> Proc:
        self._count += 1
        log = self.workdir / f"{name}-{self._count}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARQGRAPH_")}
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        argv = [sys.executable, "-m", module, *args]
        with open(log, "wb") as out:
            popen = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        if "--metrics-port" in argv:
            self.metrics_ports[popen.pid] = int(argv[argv.index("--metrics-port") + 1])
        return Proc(name, argv, popen, log)

    def add_worker(self) -> Proc:
        concurrency = self.worker_concurrency or self.concurrency
        proc = self._spawn("worker", ["worker", *SPECS, "--redis", self.url, "--concurrency",
                                      str(concurrency), "--poll-delay", str(POLL_DELAY),
                                      *self._metrics_flag(),
                                      *(("--lease", str(self.lease)) if self.lease else ())])
        self.worker_procs.append(proc)
        return proc

    def set_workers(self, count: int, concurrency: int | None = None) -> None:
        """Stop or start workers until `count` run (and are ready), each with `concurrency`
        (the cluster's own when None; workers with another one are replaced)."""
        if (concurrency or 0) != self.worker_concurrency:
            while self.worker_procs:
                self.worker_procs.pop().stop()
            self.worker_concurrency = concurrency or 0
        while len(self.worker_procs) > count:
            self.worker_procs.pop().stop()
        while len(self.worker_procs) < count:
            self.add_worker()
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the orchestrator registered the graphs and it and every worker logged that
        they serve."""
        deadline = time.monotonic() + timeout
        procs = [p for p in [self.orchestrator, *self.worker_procs] if p is not None]
        while time.monotonic() < deadline:
            dead = [p for p in procs if not p.alive()]
            if dead:
                raise RuntimeError(f"bench: {dead[0].name} exited:\n{dead[0].tail()}")
            registered = cast(int, self.redis().hlen(protocol.GRAPHS_KEY)) >= 6
            serving = all("serving graphs" in p.head() for p in procs)
            if registered and serving:
                return
            time.sleep(0.05)
        raise RuntimeError("bench: the cluster did not come up:\n" + "\n".join(p.tail() for p in procs))

    def start_arq_workers(self, count: int, concurrency: int = WORKER_CONCURRENCY) -> None:
        """Plain arq worker processes (bench.plain_arq), `count` of them, ready when this returns."""
        self.stop_arq_workers()
        for _ in range(count):
            self.arq_procs.append(self._spawn(
                "arq-worker", ["--redis", self.url, "--concurrency", str(concurrency),
                               "--poll-delay", str(ARQ_POLL_DELAY), "--queue", ARQ_QUEUE],
                module="bench.plain_arq"))
        deadline = time.monotonic() + 30
        while not all("Starting worker" in p.head() for p in self.arq_procs):
            if any(not p.alive() for p in self.arq_procs) or time.monotonic() > deadline:
                raise RuntimeError("bench: plain arq workers did not start:\n"
                                   + "\n".join(p.tail() for p in self.arq_procs))
            time.sleep(0.05)

    def stop_arq_workers(self) -> None:
        for proc in self.arq_procs:
            proc.stop()
        self.arq_procs = []

    def arqgraph_procs(self) -> list[Proc]:
        return [p for p in [self.orchestrator, *self.worker_procs] if p is not None]

    def stop_pool(self) -> None:
        for proc in self.worker_procs:
            proc.popen.send_signal(signal.SIGTERM)
        if self.orchestrator is not None:
            self.orchestrator.popen.send_signal(signal.SIGTERM)
        for proc in self.arqgraph_procs():
            proc.stop()
        self.orchestrator, self.worker_procs = None, []

    def stop(self) -> None:
        self.stop_arq_workers()
        self.stop_pool()
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.terminate()
            try:
                self.redis_proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.redis_proc.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    # -- Redis counters --

    def info(self, section: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.redis().info(section))

    def commands(self) -> int:
        return int(self.info("stats")["total_commands_processed"])

    def net_bytes(self) -> int:
        stats = self.info("stats")
        return int(stats["total_net_input_bytes"]) + int(stats["total_net_output_bytes"])

    def commandstats(self) -> dict[str, int]:
        """Calls per command (EVALSHA, HMGET, ...) since the server started."""
        return {k.removeprefix("cmdstat_").upper(): int(v["calls"])
                for k, v in self.info("commandstats").items()}

    def idle_window(self, cpu: Callable[[], dict[str, float]], seconds: float
                    ) -> tuple[dict[str, float], dict[str, float]]:
        """CPU % by name (`cpu` gives CPU seconds by name) and Redis commands/s by command
        over `seconds` of doing nothing; INFO, the reading's own, left out."""
        before, stats = cpu(), self.commandstats()
        started = time.perf_counter()
        time.sleep(seconds)
        elapsed = time.perf_counter() - started
        after, delta = cpu(), counter_delta(stats, self.commandstats())
        return ({k: 100 * (after[k] - before[k]) / elapsed for k in before},
                {k: v / elapsed for k, v in delta.items() if k != "INFO"})

    def redis_version(self) -> str:
        return str(self.info("server")["redis_version"])


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
