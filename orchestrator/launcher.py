"""`arqgraph up`: a local pool for people without Docker, and a small supervisor of it.

Each child (redis-server if none answers, one orchestrator, N workers) runs in its own process
group, so a Ctrl-C in the terminal reaches `up` alone, which then stops the pool in order:
workers first (they hand back or finish their nodes while Redis is still there), then the
orchestrator, then the Redis it started. A child that dies is restarted with backoff. Redis
keeps its AOF in `--data-dir`, so threads and pending runs survive a restart of the pool.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from arqgraph.storage.connection import connect, safe_url
from arqgraph.storage.presence import Presence

RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # backoff of a child that keeps dying
STEADY = 30.0  # a child that ran this long before dying restarts at the first delay again
STOP_WAIT = 45.0  # seconds a child gets to stop on SIGTERM (a worker's grace is 30 s)
TICK = 0.2


def say(message: str) -> None:
    print(f"arqgraph up: {message}", flush=True)


@dataclass
class Child:
    """A supervised process: how to start it, and its restarts."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    deaths: int = 0
    restart_at: float | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True,
                                     stdin=subprocess.DEVNULL)
        self.started, self.restart_at = time.monotonic(), None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def watch(self) -> None:
        """Restart the child if it died (after its backoff)."""
        now = time.monotonic()
        if self.proc is None or self.alive():
            return
        if self.restart_at is None:
            if now - self.started >= STEADY:
                self.deaths = 0
            delay = RESTART_DELAYS[min(self.deaths, len(RESTART_DELAYS) - 1)]
            self.deaths += 1
            self.restart_at = now + delay
            say(f"{self.name} (pid {self.pid}) exited with code {self.proc.returncode}; "
                f"restarting it in {delay:g}s")
        elif now >= self.restart_at:
            self.start()
            say(f"{self.name} restarted (pid {self.pid})")

    def terminate(self) -> None:
        if self.proc is not None and self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, signalled: bool = False) -> None:
        """SIGTERM (unless `signalled` already), then wait; SIGKILL if it does not stop."""
        if not self.alive():
            return
        assert self.proc is not None
        if not signalled:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _reachable(url: str) -> bool:
    async def probe() -> bool:
        try:
            redis = await connect(url, attempts=1, what="up")
        except Exception:
            return False
        await redis.aclose()
        return True

    return asyncio.run(probe())


def _serving(url: str, orchestrator: int, workers: set[int]) -> bool:
    """Whether the orchestrator of pid `orchestrator` registered its graphs and heartbeats,
    and every worker of `workers` heartbeats."""
    async def probe() -> bool:
        redis = await connect(url, attempts=1, what="up")
        try:
            orchestrators = {b.pid for b in await Presence(redis, "orchestrator").live()}
            beating = {b.pid for b in await Presence(redis, "worker").live()}
        finally:
            await redis.aclose()
        return orchestrator in orchestrators and workers <= beating

    try:
        return asyncio.run(probe())
    except Exception:
        return False


def _redis_child(url: str, data_dir: Path) -> Child:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit(f"arqgraph up: no Redis at {safe_url(url)} and redis-server is not "
                         "installed")
    parsed = urlparse(url)
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [server, "--port", str(parsed.port or 6379), "--bind", parsed.hostname or "127.0.0.1",
            "--appendonly", "yes", "--dir", str(data_dir.resolve()), "--save", "",
            "--logfile", str((data_dir / "redis.log").resolve())]  # (its log: not ours)
    if parsed.password:
        argv += ["--requirepass", parsed.password]
    say(f"starting redis-server on port {parsed.port or 6379} (AOF and log in {data_dir})")
    return Child("redis-server", argv, dict(os.environ))


def pool_commands(args: argparse.Namespace) -> list[list[str]]:
    """The command lines of the pool's orchestrator and `--workers` workers; with
    `--metrics-port`, the orchestrator serves metrics on that port and worker n on port + n."""
    base = [sys.executable, "-m", "arqgraph.cli"]
    port = getattr(args, "metrics_port", None)

    def metrics(n: int) -> list[str]:
        return ["--metrics-port", str(port + n)] if port else []

    commands = [[*base, "orchestrator", *args.specs, "--redis", args.redis, *metrics(0)]]
    for n in range(1, args.workers + 1):
        commands.append([*base, "worker", *args.specs, "--redis", args.redis,
                         "--concurrency", str(args.concurrency), *metrics(n)])
    return commands


def launch(args: argparse.Namespace) -> int:
    """Start redis (if needed), one orchestrator and `--workers` workers; print ready once the
    graphs are registered and every worker heartbeats; restart children that die; stop all, in
    order, on Ctrl-C or SIGTERM."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    redis: Child | None = None
    if not _reachable(args.redis):
        redis = _redis_child(args.redis, Path(args.data_dir))
        redis.start()
        deadline = time.monotonic() + 10
        while not _reachable(args.redis):
            if not redis.alive() or time.monotonic() > deadline:
                redis.stop()
                raise SystemExit("arqgraph up: redis-server did not start")
            time.sleep(0.1)
    env = {**os.environ, "ARQGRAPH_REDIS_URL": args.redis,
           "ARQGRAPH_CONNECT_TIMEOUT": str(args.connect_timeout)}
    commands = pool_commands(args)
    orchestrator = Child("orchestrator", commands[0], env)
    workers = [Child(f"worker {i}", command, env) for i, command in enumerate(commands[1:], 1)]
    children = [orchestrator, *workers]
    if getattr(args, "serve", 0):  # LangGraph's HTTP API beside the pool (arqgraph serve)
        children.append(Child("server", [sys.executable, "-m", "arqgraph.cli", "serve",
                                         *args.specs, "--redis", args.redis,
                                         "--port", str(args.serve)], env))
    for child in children:
        child.start()
    ready = False
    try:
        while not stopping:
            for child in [*([redis] if redis else []), *children]:
                child.watch()
            if not ready and _serving(args.redis, orchestrator.pid, {w.pid for w in workers}):
                ready = True
                say(f"ready: orchestrator and {len(workers)} workers serving "
                    f"{' '.join(args.specs)} on {safe_url(args.redis)}; Ctrl-C stops them")
            time.sleep(TICK)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop
        say("stopping: workers, then the orchestrator" + (", then redis-server" if redis else ""))
        for child in workers:  # all at once: they drain together
            child.terminate()
        for child in workers:
            child.stop(signalled=True)
        for child in [*children[len(workers) + 1:], orchestrator, *([redis] if redis else [])]:
            child.stop()  # (the server, if any, then the orchestrator, then Redis)
        say("stopped")
    return 0
