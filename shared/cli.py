"""The `arqgraph` command: run a graph, serve as orchestrator or worker, launch a local pool;
the commands that look at and steer a pool are `arqgraph.cli_admin`'s."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

from arqgraph.observe.logs import ObserveSettingError
from arqgraph.observe.logs import configure as configure_logging
from arqgraph.observe.metrics import Metrics, sample_queue_depth, watch_worker
from arqgraph.observe.metrics import serve as serve_metrics
from arqgraph.settings import Settings

STREAM_MODES = ("values", "updates", "custom")
UP_METRICS_PORT = 9400  # `arqgraph up` serves metrics from here on (9100 is node_exporter's)
GC_YOUNG_THRESHOLD = 50_000  # net new objects between collections of the youngest generation


def build_parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    from arqgraph import __version__
    from arqgraph.cli_admin import add_commands
    from arqgraph.dashboard.command import add_dashboard

    s = settings or Settings.from_env()
    parser = argparse.ArgumentParser(
        prog="arqgraph",
        description="Run LangGraph-style StateGraph workflows on an arq worker pool over Redis. "
        "Every option also reads an ARQGRAPH_* environment variable (shown as the default).",
    )
    parser.add_argument("--version", action="version", version=f"arqgraph {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)

    def redis_option(p: argparse.ArgumentParser, default: str | None) -> None:
        p.add_argument("--redis", default=default, metavar="URL",
                       help="Redis URL, e.g. redis://:password@host:6379/0 or rediss://... "
                       f"(env ARQGRAPH_REDIS_URL; default: {default or 'embedded in-memory'})")
        timeout_option(p, s.connect_timeout)

    def queue_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--queue", default=s.queue,
                       help=f"arq queue that carries node jobs (env ARQGRAPH_QUEUE; {s.queue})")

    run = sub.add_parser("run", help="run one graph and print its events and final state",
                         parents=[common],
                         description="Run one graph. Without --redis it runs embedded: "
                         "orchestrator and worker in this process over an in-memory store. "
                         "With --redis it submits to that cluster (SPEC may then be a graph name).")
    run.add_argument("spec", help="pkg.module:graph (or, with --redis, a registered graph name)")
    run.add_argument("--input", default="{}", help="the graph input as JSON (default {})")
    run.add_argument("--config", default="{}", help='run config as JSON, e.g. {"recursion_limit": 50}')
    run.add_argument("--thread-id", help="run on this thread (kept until deleted: resumable)")
    run.add_argument("--stream", choices=STREAM_MODES, action="append", default=[],
                     help="print events of this stream mode as they come (repeatable)")
    redis_option(run, s.redis_url if "redis_url" in s.model_fields_set else None)  # (embedded)

    orch = sub.add_parser("orchestrator", help="serve as an orchestrator for the given graphs",
                          parents=[common],
                          description="Walk runs of the given graphs superstep by superstep, "
                          "enqueueing ready nodes as arq jobs. Several may run at once.")
    orch.add_argument("specs", nargs="+", metavar="SPEC", help="pkg.module:graph, one or more")
    redis_option(orch, s.redis_url)
    queue_option(orch)
    orch.add_argument("--sweep-interval", type=float, default=s.sweep_interval,
                      help="seconds between checks of unfinished runs, a safety net for lost "
                      "notices: a run is checked once it has not moved for this long, a run "
                      "found waiting again after twice as long each time, up to 16 times this "
                      f"(env ARQGRAPH_SWEEP_INTERVAL; {s.sweep_interval})")
    orch.add_argument("--retention", type=int, default=s.retention,
                      help=f"seconds a finished run stays readable (env ARQGRAPH_RETENTION; "
                      f"{s.retention})")
    orch.add_argument("--history-depth", type=int, default=s.history_depth,
                      help="checkpoints each thread (and each subgraph's namespace) keeps, the "
                      "newest; older ones, their pending writes and the large values only they "
                      "refer to are pruned (env ARQGRAPH_HISTORY_DEPTH; "
                      f"{s.history_depth}: keep every one, as LangGraph)")

    work = sub.add_parser("worker", help="serve as a worker executing the graphs' nodes",
                          parents=[common],
                          description="Execute node jobs of the given graphs from the arq queue.")
    work.add_argument("specs", nargs="+", metavar="SPEC", help="pkg.module:graph, one or more")
    redis_option(work, s.redis_url)
    queue_option(work)
    work.add_argument("--concurrency", type=int, default=s.concurrency,
                      help=f"nodes run at once (env ARQGRAPH_CONCURRENCY; {s.concurrency})")
    work.add_argument("--poll-delay", type=float, default=s.poll_delay,
                      help="longest wait between queue checks; new jobs wake workers at once "
                      f"(env ARQGRAPH_POLL_DELAY; {s.poll_delay})")
    work.add_argument("--job-timeout", type=float, default=s.job_timeout,
                      help="seconds a node without its own timeout may run before it fails with "
                      f"NodeTimeoutError; 0 for no limit (env ARQGRAPH_JOB_TIMEOUT; {s.job_timeout})")
    work.add_argument("--lease", type=float, default=s.lease,
                      help="seconds after which a dead worker's running nodes are started "
                      f"again elsewhere (env ARQGRAPH_LEASE; {s.lease})")
    work.add_argument("--crash-limit", type=int, default=s.crash_limit,
                      help="times a node may be started and lost with its worker before the "
                      f"run fails with TaskLostError (env ARQGRAPH_CRASH_LIMIT; {s.crash_limit})")
    work.add_argument("--max-update-bytes", type=int, default=s.max_update_bytes,
                      help="largest update a node may post; a larger one fails the node with "
                      f"UpdateTooLargeError (env ARQGRAPH_MAX_UPDATE_BYTES; {s.max_update_bytes})")
    work.add_argument("--shutdown-grace", type=float, default=s.shutdown_grace,
                      help="on SIGTERM, seconds running nodes get to finish "
                      f"(env ARQGRAPH_SHUTDOWN_GRACE; {s.shutdown_grace})")
    work.add_argument("--log-jobs", action="store_true", default=s.log_jobs,
                      help="log arq's two lines per job (start, end); off by default: at "
                      "thousands of tasks a second they cost more than the tasks "
                      "(env ARQGRAPH_LOG_JOBS=1)")

    for serving, role in ((orch, "orchestrator"), (work, "worker")):
        observe_options(serving, s, role)
    dead = sub.add_parser("dead-letters", parents=[common],
                          help="list data set aside as unreadable, newest first")
    redis_option(dead, s.redis_url)
    dead.add_argument("--count", type=int, default=100, help="how many to list (default 100)")

    up = sub.add_parser("up", help="launch a local pool: redis (if needed), orchestrator, workers",
                          parents=[common],
                        description="Start a local pool without Docker: a redis-server if none is "
                        "reachable, one orchestrator and N workers. Ctrl-C stops them all.")
    up.add_argument("specs", nargs="+", metavar="SPEC", help="pkg.module:graph, one or more")
    redis_option(up, s.redis_url)
    up.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    up.add_argument("--data-dir", default=".arqgraph", metavar="DIR",
                    help="where the redis-server that up starts keeps its AOF, so threads and "
                    "pending runs survive a restart (default .arqgraph in the working folder)")
    up.add_argument("--concurrency", type=int, default=s.concurrency,
                    help=f"nodes each worker runs at once ({s.concurrency})")
    up.add_argument("--metrics-port", type=int, default=s.metrics_port or UP_METRICS_PORT,
                    metavar="PORT", help="serve Prometheus metrics: the orchestrator on PORT, "
                    "the workers on PORT+1, PORT+2, ...; 0 for none (env ARQGRAPH_METRICS_PORT; "
                    f"{s.metrics_port or UP_METRICS_PORT})")
    up.add_argument("--serve", type=int, default=0, metavar="PORT",
                    help="also serve LangGraph's HTTP API on 127.0.0.1:PORT (arqgraph serve)")
    srv = sub.add_parser("serve", help="serve LangGraph's platform HTTP API over the cluster",
                         description="Serve the graphs of a langgraph.json (and/or GRAPH_SPECs: "
                         "pkg.module:graph or id=pkg.module:graph) to langgraph_sdk clients, "
                         "RemoteGraph and chat UIs. Keeps no state: run as many as you like. "
                         "Needs the serve extra (pip install 'arqgraph[serve]').")
    srv.add_argument("specs", nargs="*", metavar="GRAPH_SPEC", help="more graphs to serve")
    srv.add_argument("--config", default=None, metavar="langgraph.json",
                     help="a LangGraph project file: its graphs, env, http.cors and auth")
    redis_option(srv, s.redis_url)
    srv.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1: this machine only)")
    srv.add_argument("--port", type=int, default=2024, help="port to listen on (default 2024)")
    srv.add_argument("--api-key", default=os.environ.get("ARQGRAPH_API_KEY"),
                     help="admit only requests whose x-api-key header is this key "
                     "(env ARQGRAPH_API_KEY; default: no key)")
    srv.add_argument("--workers", type=int, default=1, metavar="N",
                     help="server processes sharing the port (default 1); each keeps no state")
    srv.add_argument("--access-log", action="store_true",
                     help="log a line per request (default: off, it costs throughput)")
    add_dashboard(sub, common, lambda p: redis_option(p, s.redis_url))
    add_commands(sub, common, s.redis_url, lambda p: timeout_option(p, s.connect_timeout))
    draw = sub.add_parser("graph", help="draw a graph (Mermaid by default)", parents=[common],
                          description="Print a graph's drawing: Mermaid, or ASCII (--ascii, "
                          "needs the langchain extra's grandalf).")
    draw.add_argument("spec", metavar="MODULE:ATTR", help="pkg.module:graph")
    style = draw.add_mutually_exclusive_group()
    style.add_argument("--mermaid", action="store_true", help="Mermaid (the default)")
    style.add_argument("--ascii", action="store_true", help="ASCII art")
    return parser


def timeout_option(p: argparse.ArgumentParser, default: float) -> None:
    p.add_argument("--connect-timeout", type=float, default=default, metavar="SECONDS",
                   help="give up with an error when Redis stays unreachable this long, 0: "
                   f"retry for ever (env ARQGRAPH_CONNECT_TIMEOUT; {default:g})")


def observe_options(p: argparse.ArgumentParser, s: Settings, role: str) -> None:
    """The observability flags of a serving process (docs/operations.md)."""
    p.add_argument("--metrics-port", type=int, default=s.metrics_port or None, metavar="PORT",
                   help=f"serve this {role}'s Prometheus metrics at http://0.0.0.0:PORT/metrics "
                   "(env ARQGRAPH_METRICS_PORT; off by default)")
    p.add_argument("--log-level", default=s.log_level, type=str.upper,
                   choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                   help=f"env ARQGRAPH_LOG_LEVEL; {s.log_level}")
    p.add_argument("--log-format", default=s.log_format, choices=("text", "json"),
                   help="json: one JSON object a line, with the role, run, thread, graph, node "
                   f"and attempt (env ARQGRAPH_LOG_FORMAT; {s.log_format})")


async def _run(args: argparse.Namespace) -> int:
    from arqgraph.cli_admin import connect, follow
    from arqgraph.embedded import EmbeddedCluster
    from arqgraph.loader import load_all

    data = json.loads(args.input)
    config = json.loads(args.config)
    if args.thread_id:
        config.setdefault("configurable", {})["thread_id"] = args.thread_id
    modes = args.stream
    if args.redis:
        client = await connect(args.redis, args.connect_timeout,
                               ready_timeout=Settings.from_env().ready_timeout)
        name = args.spec if ":" not in args.spec else load_all([args.spec])[0].name
        try:
            return await follow(await client.submit(name, data, config), client, modes,
                                args.redis)
        finally:
            await client.close()
    graphs = load_all([args.spec])
    log_arq_jobs(Settings.from_env().log_jobs)  # (its worker is in this process)
    async with EmbeddedCluster(graphs) as cluster:
        handle = await cluster.client.submit(graphs[0].name, data, config)
        return await follow(handle, cluster.client, modes, None)


def _draw(args: argparse.Namespace) -> int:
    from arqgraph.loader import load_all

    drawing = load_all([args.spec])[0].get_graph()
    print(drawing.draw_ascii() if args.ascii else drawing.draw_mermaid())
    return 0


async def _serve_orchestrator(args: argparse.Namespace) -> int:
    from arqgraph.loader import load_all
    from arqgraph.orchestrator.service import Orchestrator
    from arqgraph.storage.connection import connect

    graphs = load_all(args.specs)
    redis = await connect(args.redis, timeout=args.connect_timeout, what="orchestrator")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = Orchestrator(redis, graphs, queue=args.queue, sweep_interval=args.sweep_interval,
                           retention=args.retention, history_depth=args.history_depth)
    async with _metrics(args, service.jobs.name, service.jobs.depth):
        await service.serve_resilient(stop)
    await redis.aclose()
    logging.getLogger("arqgraph.orchestrator").info("orchestrator stopped")
    return 0


async def _serve_worker(args: argparse.Namespace) -> int:
    from arqgraph.loader import load_all
    from arqgraph.storage.connection import connect
    from arqgraph.workers.worker import build_worker

    graphs = load_all(args.specs)
    log_arq_jobs(args.log_jobs)
    redis = await connect(args.redis, timeout=args.connect_timeout, what="worker")
    worker = build_worker(redis, graphs, concurrency=args.concurrency, queue=args.queue,
                          poll_delay=args.poll_delay, job_timeout=args.job_timeout,
                          shutdown_grace=args.shutdown_grace, lease=args.lease,
                          crash_limit=args.crash_limit, max_update_bytes=args.max_update_bytes)
    logging.getLogger("arqgraph.worker").info(
        "worker serving graphs %s on queue %s", ", ".join(g.name for g in graphs), args.queue)
    try:
        async with _metrics(args, args.queue, worker.runner.jobs.depth) as metrics:
            if metrics is not None:
                watch_worker(metrics, lambda: worker.job_counter, args.concurrency)
            await worker.serve_resilient()
    finally:
        await worker.close()
    return 0


@contextlib.asynccontextmanager
async def _metrics(
    args: argparse.Namespace, queue: str, depth: Callable[[], Awaitable[int]]
) -> AsyncIterator[Metrics | None]:
    """With --metrics-port: serve this process's metrics, sampling the queue's depth."""
    if not args.metrics_port:
        yield None
        return
    metrics = serve_metrics(args.metrics_port)
    sampler = asyncio.create_task(sample_queue_depth(metrics, queue, depth))
    try:
        yield metrics
    finally:
        sampler.cancel()


def log_arq_jobs(on: bool) -> None:
    """arq logs two INFO lines per job (started, done); at thousands of tasks a second they
    cost more than the tasks. Off, arq's logger keeps its warnings and errors (the worker logs
    its own start and stop)."""
    logging.getLogger("arq.worker").setLevel(logging.NOTSET if on else logging.WARNING)


def tune_gc() -> None:
    """Collect the youngest generation after 50,000 net new objects instead of 700 (Python
    3.11's default). A worker keeps thousands of jobs' objects alive at once (a fan-out's tasks
    and their futures, the checkpoints in its cache), so at 700 nearly every collection found
    them alive and promoted them, and the old generations, holding the cache, were traversed
    again and again: a fifth of a worker's CPU in a 10,000-task fan-out, in pauses of 60-70 ms
    (see docs/benchmarks.md). Objects are still freed by their reference counts as they die; only
    cyclic garbage waits longer. A higher threshold set before, or 0 (collection off), is kept."""
    young, middle, old = gc.get_threshold()
    if young and young < GC_YOUNG_THRESHOLD:  # 0: collection is off, leave it so
        gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    tune_gc()
    try:
        settings = Settings.from_env()
        args = build_parser(settings).parse_args(argv)
        configure_logging(getattr(args, "log_level", "INFO"),
                          getattr(args, "log_format", "text"), args.command)
        if getattr(args, "redis", None):
            args.redis = settings.url(args.redis)
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if "--debug" in argv:
            raise
        code, message = _user_error(exc)
        if code is None:
            raise
        print(f"arqgraph: error: {message}", file=sys.stderr)
        return code


def _dispatch(args: argparse.Namespace) -> int:
    from arqgraph.cli_admin import run_admin
    from arqgraph.dashboard.command import run_dashboard

    if args.command == "run":
        return asyncio.run(_run(args))
    if args.command == "orchestrator":
        return asyncio.run(_serve_orchestrator(args))
    if args.command == "worker":
        return asyncio.run(_serve_worker(args))
    if args.command == "graph":
        return _draw(args)
    if args.command == "serve":
        try:
            from arqgraph.server.app import serve
        except ImportError as exc:
            raise ValueError("serve needs the serve extra (pip install 'arqgraph[serve]'): "
                             f"{exc}") from None
        return serve(args.config, args.specs, args.redis, args.host, args.port,
                     api_key=args.api_key, workers=args.workers, access_log=args.access_log,
                     connect_timeout=args.connect_timeout)
    if args.command == "dashboard":
        return run_dashboard(args)
    if args.command == "up":
        from arqgraph.orchestrator.launcher import launch

        return launch(args)
    if args.command == "dead-letters":
        from arqgraph.storage.dead_letters import print_dead_letters

        return asyncio.run(print_dead_letters(args.redis, args.count, args.connect_timeout))
    return asyncio.run(run_admin(args))


def _user_error(exc: Exception) -> tuple[int | None, str]:
    """(exit code, one line) for an error a user caused (bad input, URL, name, setting, an
    unreachable Redis); (None, "") for a bug, which keeps its traceback."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from arqgraph.errors import (
        GraphConflictError,
        InvalidInputError,
        ThreadBusyError,
        UnknownGraphError,
        UnknownRunError,
    )
    from arqgraph.loader import GraphSpecError

    if isinstance(exc, json.JSONDecodeError):
        return 2, f"not valid JSON: {exc}"
    if isinstance(exc, (GraphSpecError, UnknownGraphError, UnknownRunError, GraphConflictError,
                        InvalidInputError, ThreadBusyError, ObserveSettingError, ValueError)):
        return 2, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, (RedisConnectionError, ConnectionError, OSError)):
        return 1, f"cannot reach Redis: {exc}"
    return None, ""


if __name__ == "__main__":
    sys.exit(main())
