"""What the engine tells about its work, for metrics, traces and logs to hear.

The engine calls the current `Hooks` at a handful of points (a run started or ended, a commit
made, a node attempt, a worker's heartbeat). By default every hook does nothing, so a process
that observes nothing pays one method call per event; `arqgraph.observe.metrics.install`
puts hooks that count in their place. A node attempt is one context manager
(`node_attempt`), which also sets the log context (`arqgraph.observe.logs`) and opens the
attempt's span (`arqgraph.observe.traces`), so the worker's hot path has one line for all
three.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from arqgraph.observe import logs, traces


@dataclass
class Attempt:
    """One attempt at a node: what it is of (bounded labels: graph, node), and where (run,
    thread, step: for logs and spans only). The runner sets `outcome` as it ends (done,
    failed, timeout, interrupted or cancelled), and `retried` when its retry policy tries
    again."""

    graph: str
    node: str
    attempt: int
    run_id: str
    thread_id: str
    step: int
    queued: float | None = None  # seconds from due in the queue to started
    outcome: str = "done"
    retried: bool = False
    error: str = ""  # the error's type and message, when it failed


class Hooks:
    """The events the engine tells; each does nothing here."""

    def run_started(self, graph: str) -> None:
        """An orchestrator put a submitted run on its first step."""

    def run_ended(self, graph: str, status: str, seconds: float | None) -> None:
        """A commit ended a run (`status`: done, failed, cancelled, interrupted); `seconds`
        since it was submitted, when known."""

    def committed(self, seconds: float, step: bool) -> None:
        """A commit of a run was made, taking `seconds` (its round trip); `step`: it moved the
        run on to its next superstep."""

    def attempt_started(self, attempt: Attempt) -> None:
        """A worker starts an attempt at a node."""

    def attempt_ended(self, attempt: Attempt, seconds: float) -> None:
        """The attempt ended (`attempt.outcome` says how) after `seconds`."""

    def heartbeat(self) -> None:
        """A worker's loop went round: it is alive and looking for jobs."""


hooks = Hooks()


def set_hooks(new: Hooks) -> Hooks:
    """Make `new` the hooks every engine module calls; returns the previous ones."""
    global hooks
    previous, hooks = hooks, new
    return previous


def current() -> Hooks:
    return hooks


@contextmanager
def node_attempt(attempt: Attempt, trace: str = "") -> Iterator[Attempt]:
    """Around one attempt at a node: its log context, its span (a child of the superstep's
    span whose context the job carried, `trace`), and the hooks' start and end."""
    token = logs.enter(run_id=attempt.run_id, thread_id=attempt.thread_id, graph=attempt.graph,
                       node=attempt.node, attempt=attempt.attempt)
    hooks.attempt_started(attempt)
    started = time.perf_counter()
    try:
        with traces.node_span(attempt, trace):
            yield attempt
    except BaseException:
        if attempt.outcome == "done":
            attempt.outcome = "cancelled"
        raise
    finally:
        hooks.attempt_ended(attempt, time.perf_counter() - started)
        logs.leave(token)
