"""`arqgraph up`: a local pool for people without Docker, one command, Ctrl-C stops it all."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlparse

from arqgraph.storage.connection import connect


def _reachable(url: str) -> bool:
    async def probe() -> bool:
        try:
            redis = await connect(url, attempts=1, what="up")
        except Exception:
            return False
        await redis.aclose()
        return True

    return asyncio.run(probe())


def _start_redis(url: str) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit(f"arqgraph up: no Redis at {url} and redis-server is not installed")
    parsed = urlparse(url)
    data_dir = tempfile.mkdtemp(prefix="arqgraph-redis-")
    cmd = [server, "--port", str(parsed.port or 6379), "--bind", parsed.hostname or "127.0.0.1",
           "--appendonly", "yes", "--dir", data_dir, "--save", ""]
    if parsed.password:
        cmd += ["--requirepass", parsed.password]
    print(f"arqgraph up: starting redis-server on port {parsed.port or 6379} (AOF in {data_dir})")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not _reachable(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("arqgraph up: redis-server did not start")
        time.sleep(0.1)
    return proc


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
    """Start redis (if needed), one orchestrator and `--workers` workers; stop all on Ctrl-C."""
    procs: list[subprocess.Popen[bytes]] = []
    if not _reachable(args.redis):
        procs.append(_start_redis(args.redis))
    env = {**os.environ, "ARQGRAPH_REDIS_URL": args.redis}
    for command in pool_commands(args):
        procs.append(subprocess.Popen(command, env=env))
    print(f"arqgraph up: orchestrator and {args.workers} workers on {args.redis}; Ctrl-C stops")

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.2)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0 if stopping else 1
