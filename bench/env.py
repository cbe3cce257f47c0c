"""What every scenario gets: the sizes for this mode, the cluster and a producer client on it,
the LangGraph twins of the graphs, and one way to run a graph on each backend and time it."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from arqgraph.client import Client
from arqgraph.embedded import EmbeddedCluster
from arqgraph.graph.compiled import CompiledStateGraph
from bench import graphs
from bench.cluster import Cluster, counter_delta, cpu_seconds
from bench.graphs import GRAPHS


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is. The full sizes are the issue's; --quick scales them down."""

    reps: int = 3
    chain: int = graphs.CHAIN_LENGTH
    fanout: int = 10_000
    io_tasks: int = 2_000
    io_sleep: float = 0.2
    runs: int = 1_000
    fanout_target: int = 10_000
    cpu_tasks: int = 400
    cpu_ms: float = 5.0
    idle_window: float = 60.0  # idle processes wake every 20 s: three rounds
    blob_tasks: int = 1_000
    blob_bytes: int = 1_000_000
    inflight_runs: int = 10_000
    screening_reps: int = 3
    screening_together: bool = False  # run the backends at once (the run is all sleeping)


FULL = Sizes()
QUICK = Sizes(reps=1, fanout=300, io_tasks=300, runs=200,
              cpu_tasks=80, idle_window=20.0, blob_tasks=100, inflight_runs=500, screening_reps=1,
              screening_together=True)


@dataclass
class Probe:
    """Counters of one measured stretch: Redis commands by name, bytes, CPU seconds by process."""

    commands: dict[str, int] = field(default_factory=dict)
    net_bytes: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Env:
    sizes: Sizes
    quick: bool
    cluster: Cluster | None = None
    client: Client | None = None
    profile: bool = False
    langgraph: dict[str, Any] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    profiles: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.langgraph:
            self.langgraph = graphs.build_all(graphs.langgraph_kit())

    def say(self, text: str) -> None:
        print(f"  . {text}", flush=True)
        self.log.append(text)

    # -- running one graph on each backend --

    async def on_cluster(self, graph: str, input: Any) -> tuple[float, Any]:
        assert self.client is not None, "no cluster"
        started = time.perf_counter()
        handle = await self.client.submit(graph, input)
        output = await handle.result()
        return time.perf_counter() - started, output

    async def on_embedded(self, graph: str, input: Any) -> tuple[float, Any]:
        """`graph.ainvoke` on the embedded default, as a ported program runs it (each call
        starts its in-process orchestrator and worker: that is timed too)."""
        started = time.perf_counter()
        with quiet():
            output = await embedded_graph(graph).ainvoke(input, {"recursion_limit": 100_000})
        return time.perf_counter() - started, output

    async def on_langgraph(self, graph: str, input: Any) -> tuple[float, Any]:
        started = time.perf_counter()
        with quiet():
            output = await self.langgraph[graph].ainvoke(input, {"recursion_limit": 100_000})
        return time.perf_counter() - started, output

    # -- counters around a stretch of work on the cluster --

    def _snapshot(self) -> tuple[dict[str, int], int, dict[str, float], float]:
        assert self.cluster is not None
        c = self.cluster
        pids: dict[str, list[int]] = {"orchestrator": [c.orchestrator.pid] if c.orchestrator else [],
                                      "workers": [p.pid for p in c.worker_procs],
                                      "redis-server": [c.redis_proc.pid] if c.redis_proc else []}
        cpu = {name: sum(cpu_seconds(pid) for pid in ps) for name, ps in pids.items()}
        return c.commandstats(), c.net_bytes(), cpu, time.perf_counter()

    @contextlib.contextmanager
    def probe(self) -> Iterator[Probe]:
        """Counts what the cluster did inside the block (the probe's own INFO calls excluded)."""
        result = Probe()
        if self.cluster is None:
            yield result
            return
        commands, net, cpu, started = self._snapshot()
        yield result
        commands2, net2, cpu2, ended = self._snapshot()
        delta = counter_delta(commands, commands2)
        delta["INFO"] = delta.get("INFO", 0) - 3  # the snapshot's own three INFO calls
        result.commands = {k: v for k, v in delta.items() if v > 0}
        result.net_bytes = net2 - net
        result.cpu = {k: cpu2[k] - cpu[k] for k in cpu}
        result.seconds = ended - started


@contextlib.asynccontextmanager
async def embedded(concurrency: int = 1000) -> AsyncIterator[EmbeddedCluster]:
    """The embedded default serving every bench graph (the screening example included)."""
    from examples.screening import graph as screening

    graphs_: list[CompiledStateGraph] = [*GRAPHS, screening]
    with quiet():
        async with EmbeddedCluster(graphs_, concurrency=concurrency) as cluster:
            yield cluster


def embedded_graph(name: str) -> CompiledStateGraph:
    """A bench graph (or the screening example) by name, to run on the embedded default."""
    from examples.screening import graph as screening

    found = {g.name: g for g in [*GRAPHS, screening]}
    return found[name]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence what nodes print (the screening example narrates its steps)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
