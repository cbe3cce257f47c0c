"""`arqgraph dashboard`: its options, and starting it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_dashboard(sub: Any, common: argparse.ArgumentParser,
                  redis_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the `dashboard` command to the `arqgraph` parser's subcommands."""
    dash: argparse.ArgumentParser = sub.add_parser(
        "dashboard", help="serve a web page over the pool: runs, workers, queues",
        parents=[common],
        description="Serve a web dashboard of the pool at --redis: its runs (live), a run's "
        "graph, steps, state at each checkpoint, events and error; workers and queues. "
        "Read-only unless --allow-control. Needs the dashboard extra (pip install "
        "'arqgraph[dashboard]').")
    redis_option(dash)
    dash.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1: this machine only; any "
                      "other needs a token)")
    dash.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    dash.add_argument("--allow-control", action="store_true",
                      help="let the page cancel runs and answer interrupts (without: 403)")
    dash.add_argument("--token", default=None,
                      help="admit only requests carrying this token: ?token=T (which the page "
                      "keeps) or the x-arqgraph-token header; needed beyond localhost "
                      "(env ARQGRAPH_DASHBOARD_TOKEN)")


def run_dashboard(args: argparse.Namespace) -> int:
    try:
        from arqgraph.dashboard.app import serve
    except ImportError as exc:
        raise ValueError("dashboard needs the dashboard extra (pip install "
                         f"'arqgraph[dashboard]'): {exc}") from None
    from arqgraph.dashboard.access import default_token

    return serve(args.redis, args.host, args.port, allow_control=args.allow_control,
                 token=args.token or default_token(), connect_timeout=args.connect_timeout)
