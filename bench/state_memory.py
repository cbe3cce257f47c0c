"""What one run of a large state leaves in Redis: a state of `--mb` MB (random bytes, which
nothing compresses) run through a 3-node chain whose nodes each write a small counter, on a
redis-server of its own. Reports the growth of INFO memory's used_memory and the MEMORY USAGE
of each key the run left, so a change in how checkpoints or events are kept shows in bytes.

    python -m bench.state_memory --mb 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any, TypedDict

import redis.asyncio as aioredis
from arq.connections import ArqRedis

from arqgraph.embedded import EmbeddedCluster
from arqgraph.graph import END, START, StateGraph
from arqgraph.storage.connection import connect


class Big(TypedDict):
    data: bytes
    n: int


def chain() -> Any:
    """Three nodes in a row, each adding 1 to `n`; `data` only passes through."""
    builder = StateGraph(Big)
    for name in ("a", "b", "c"):
        builder.add_node(name, lambda state: {"n": state["n"] + 1})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder.compile(name="big_chain")


async def key_sizes(redis: aioredis.Redis) -> dict[str, int]:
    """MEMORY USAGE (all samples) of every key of the database."""
    sizes = {}
    async for key in redis.scan_iter(count=1000):
        used = await redis.memory_usage(key, samples=0)
        sizes[key.decode(errors="replace")] = int(used or 0)
    return sizes


async def run_once(redis: ArqRedis, size: int, *, thread_id: str = "big",
                   modes: Sequence[str] = ()) -> dict[str, int]:
    """Run the chain once with a state of `size` bytes, recording the events of stream `modes`
    besides values, updates and custom; the sizes of the keys it left."""
    graph = chain()
    async with EmbeddedCluster([graph], redis=redis) as cluster:
        handle = await cluster.client.submit(
            graph.name, {"data": os.urandom(size), "n": 0},
            {"configurable": {"thread_id": thread_id}}, stream_mode=list(modes))
        result = await asyncio.wait_for(handle.result(), 300)
        assert result["n"] == 3 and len(result["data"]) == size
    return {k: v for k, v in (await key_sizes(redis)).items() if not k.startswith("arq:")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(mb: float, modes: Sequence[str]) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    size = int(mb * 1024 * 1024)
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", tmp],
                                  stdout=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    await aioredis.from_url(url).ping()
                    break
                except (OSError, aioredis.ConnectionError):
                    await asyncio.sleep(0.05)
            probe = aioredis.from_url(url)
            before = int((await probe.info("memory"))["used_memory"])
            sizes = await run_once(await connect(url), size, modes=modes)
            after = int((await probe.info("memory"))["used_memory"])
            await probe.aclose()
        finally:
            server.terminate()
            server.wait(10)
    total = sum(sizes.values())
    print(f"state: {size / 2**20:.1f} MiB through a 3-node chain"
          + (f", recording {', '.join(modes)}" if modes else ""))
    print(f"used_memory growth: {(after - before) / 2**20:.1f} MiB "
          f"({(after - before) / size:.2f}x the state)")
    print(f"MEMORY USAGE of the run's keys: {total / 2**20:.1f} MiB ({total / size:.2f}x)")
    for key, used in sorted(sizes.items(), key=lambda kv: -kv[1]):
        if used > size / 100:
            print(f"  {used / 2**20:8.1f} MiB  {key}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of the state (MB)")
    parser.add_argument("--modes", default="", help="stream modes to record besides values, "
                        "updates and custom, comma-separated (tasks,checkpoints,debug)")
    args = parser.parse_args()
    asyncio.run(main(args.mb, [m for m in args.modes.split(",") if m]))
