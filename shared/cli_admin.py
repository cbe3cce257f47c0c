"""The `arqgraph` commands that look at and steer a running pool: a thin shell over
`arqgraph.admin` that prints its answers as text for people or as JSON (`--json`) for scripts."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from arqgraph.admin import Admin
from arqgraph.client import Client, RunHandle

RUN_STATUSES = ("running", "interrupted", "done", "failed", "cancelled")
PROGRESS_INTERVAL = 0.25  # seconds between updates of `run`'s progress line



def dumps(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)


def add_commands(sub: Any, common: argparse.ArgumentParser, redis_default: str,
                 timeout_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the admin commands to the `arqgraph` parser's subcommands."""

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help,
                                                    parents=[common])
        p.add_argument("--redis", default=redis_default, metavar="URL",
                       help=f"Redis URL (env ARQGRAPH_REDIS_URL; default {redis_default})")
        timeout_option(p)
        p.add_argument("--json", action="store_true", help="print JSON, for scripts")
        return p

    runs = command("runs", "recent runs, newest first")
    runs.add_argument("--graph", help="only runs of this graph")
    runs.add_argument("--status", choices=RUN_STATUSES, help="only runs in this status")
    runs.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    command("status", "a run: status, superstep, tasks, error with traceback, interrupts") \
        .add_argument("run_id", metavar="RUN_ID")
    command("cancel", "cancel a run: queued tasks dropped, running nodes cancelled") \
        .add_argument("run_id", metavar="RUN_ID")
    resume = command("resume", "answer a thread's pending interrupt (Command(resume=VALUE)) "
                     "and follow the run")
    resume.add_argument("thread_id", metavar="THREAD_ID")
    resume.add_argument("--value", required=True, help="the answer, as JSON")
    resume.add_argument("--graph", help="the thread's graph (needed when several are registered)")
    state = command("state", "a thread's state (with --history: its checkpoints, newest first)")
    state.add_argument("thread_id", metavar="THREAD_ID")
    state.add_argument("--history", action="store_true", help="every checkpoint of the thread")
    command("workers", "live workers: host, pid, queues, concurrency, running jobs, heartbeat")
    command("graphs", "registered graphs: queue, fingerprint, orchestrators, live workers")
    command("health", "exit 0 when Redis answers, an orchestrator is alive and every "
            "registered graph's queue has a live worker")


async def connect(url: str, timeout: float | None, ready_timeout: float = 0) -> Client:
    """A client of `url`, retrying an unreachable Redis for `timeout` seconds at most."""
    from arqgraph.storage.connection import connect as connect_redis

    redis = await connect_redis(url, timeout=timeout, what="arqgraph")
    return Client(redis, ready_timeout=ready_timeout)


async def run_admin(args: argparse.Namespace) -> int:
    client = await connect(args.redis, args.connect_timeout)
    admin = Admin(client)
    try:
        if args.command == "resume":
            value = json.loads(args.value)
            handle = await admin.resume(args.thread_id, value, args.graph)
            return await follow(handle, client, [], args.redis)
        answer, text = await _answer(admin, args)
    finally:
        await client.close()
    print(dumps(answer) if args.json else text, flush=True)
    if args.command == "health":
        return 1 if answer["problems"] else 0
    return 0


async def _answer(admin: Admin, args: argparse.Namespace) -> tuple[Any, str]:
    """The command's answer as data, and as text."""
    if args.command == "runs":
        runs = await admin.runs(args.graph, args.status, args.limit)
        shown = [{**r, "started": r["created"], "duration": _seconds(r["duration"])}
                 for r in runs]
        return runs, _table(shown, ["run_id", "thread_id", "graph", "status", "step", "started",
                                    "duration"])
    if args.command == "status":
        status = await admin.status(args.run_id)
        return status, _status_text(status)
    if args.command == "cancel":
        answer = await admin.cancel(args.run_id)
        return answer, f"cancelling run {args.run_id}"
    if args.command == "state":
        states = await admin.state(args.thread_id, args.history)
        return (states if args.history else states[0]), "\n".join(dumps(s) for s in states)
    if args.command == "workers":
        workers = await admin.workers()
        return workers, _table(workers, ["id", "host", "pid", "queues", "concurrency",
                                         "running", "age"])
    if args.command == "graphs":
        graphs = await admin.graphs()
        return graphs, _table(graphs, ["name", "queue", "fingerprint", "orchestrators",
                                       "workers", "waiting_for_workers"])
    problems = await admin.health()
    return {"healthy": not problems, "problems": problems}, (
        "healthy" if not problems else "\n".join(f"unhealthy: {p}" for p in problems))


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, float) and value > 1e9:  # a Unix time
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    return str(value)


def _seconds(value: float | None) -> str:
    """A duration for people: 0.4s, 12.3s, 4m05s, 2h03m."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _table(rows: Sequence[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [columns] + [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def _status_text(status: dict[str, Any]) -> str:
    head = status["status"] + (" (waiting for workers)" if status["waiting_for_workers"] else "")
    lines = [f"run {status['run_id']}  thread {status['thread_id']}  graph {status['graph']}",
             f"status {head}  step {status['step']}  started {_cell(status['created'])}"
             f"  duration {_seconds(status['duration'])}"]
    for t in status["tasks"]:
        on = f" on {t['worker']} since {_cell(t['since'])}" if t["worker"] else ""
        lines.append(f"  task {t['node']} [{t['id']}]: {t['state']}, attempt {t['attempt']}{on}")
    if status["error"]:
        lines.append(error_text(status["error"]))
    for interrupt in status["interrupts"]:
        lines.append(f"interrupt {interrupt['id']}: {dumps(interrupt['value'])}")
    return "\n".join(lines)


def error_text(error: dict[str, Any]) -> str:
    where = f" in node {error['node']!r}" if error.get("node") else ""
    text = f"failed{where}: {error['type']}: {error['message']}"
    return f"{text}\n{error['traceback'].rstrip()}" if error.get("traceback") else text


async def show_progress(admin: Admin, run_id: str) -> None:
    """A live line on the terminal (rich's): the superstep, its tasks done of total, the time
    elapsed, and whether the run waits for workers. Cancelled when the run ends."""
    from rich.console import Console

    loop = asyncio.get_running_loop()
    started = loop.time()
    with Console(stderr=True).status("starting", spinner="dots") as line:
        while True:
            status = await admin.status(run_id)
            tasks = status["tasks"]
            done = sum(t["state"] == "done" for t in tasks)
            waiting = " (waiting for workers)" if status["waiting_for_workers"] else ""
            line.update(f"step {status['step']}: {done}/{len(tasks)} tasks done, "
                        f"{loop.time() - started:.1f}s{waiting}")
            await asyncio.sleep(PROGRESS_INTERVAL)


async def follow(handle: RunHandle, client: Client, modes: list[str],
                 redis_url: str | None) -> int:
    """Print the run's ids, its events, then its result; a failure with its node and the
    worker's traceback (exit 1); an interrupt as JSON and the command that resumes it (exit 0)."""
    admin = Admin(client)
    first = await admin.status(handle.run_id)
    print(f"run {handle.run_id} thread {first['thread_id']}", file=sys.stderr, flush=True)
    if modes:
        try:
            async for mode, payload in handle.stream(modes):
                print(dumps({mode: payload}), flush=True)
        except Exception:  # the run failed: said below, with its traceback
            pass
    progress = None
    if not modes and sys.stderr.isatty() and importlib.util.find_spec("rich") is not None:
        progress = asyncio.create_task(show_progress(admin, handle.run_id))
    try:
        result = await handle.result()
    except Exception as exc:
        status = await admin.status(handle.run_id)
        print(error_text(status["error"]) if status["error"] else
              f"run {status['status']}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if progress is not None:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
    print(dumps(result), flush=True)
    if await handle.status() == "interrupted":
        interrupts = (result or {}).get("__interrupt__", []) if isinstance(result, dict) else []
        values = [getattr(i, "value", i) for i in interrupts]
        print(dumps({"interrupts": values}), file=sys.stderr, flush=True)
        if redis_url:
            url = '"$ARQGRAPH_REDIS_URL"' if "@" in redis_url else redis_url  # (no password)
            print(f"to resume: arqgraph resume {first['thread_id']} --value '<JSON answer>' "
                  f"--graph {handle.graph} --redis {url}", file=sys.stderr, flush=True)
        else:
            print("(an embedded run's thread ends with this process: run it with --redis "
                  "to resume it later)", file=sys.stderr, flush=True)
    return 0
