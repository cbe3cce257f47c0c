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
from dataclasses import dataclass
from types import TracebackType

from arqgraph.observe import logs, traces

TIMEOUTS = ("NodeTimeoutError", "TimeoutError")  # the errors that are a node's timeout


@dataclass(slots=True)
class Attempt:
    """One attempt at a node: what it is of (bounded labels: graph, node), and where (run,
    thread, step: for logs and spans only); a `@task` call's is named after its task. The
    runner sets `outcome` as it ends (done, failed, timeout, interrupted, cancelled, or
    deferred: a call waiting for its limits), and `retried` when its retry policy tries
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

    def failed(self, kind: str, message: str, retried: bool) -> None:
        """It raised an exception of type `kind` (a name): timed out, or failed."""
        self.outcome = "timeout" if kind in TIMEOUTS else "failed"
        self.retried, self.error = retried, f"{kind}: {message}"


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

    def job_refused(self, graph: str, reason: str) -> None:
        """A worker failed a job instead of running it (a dead letter): its payload is not a
        task (`graph` ""), its graph is not served here or of another version, its task was
        lost with its worker too often...; `reason`: the error's type name."""

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


class node_attempt:  # noqa: N801 (used as a function: `with node_attempt(...)`)
    """Around one attempt at a node: its log context, its span (a child of the superstep's
    span whose context the job carried, `trace`), and the hooks' start and end. (A class, not
    a generator: a few microseconds less per task.)"""

    __slots__ = ("attempt", "trace", "token", "span", "started")

    def __init__(self, attempt: Attempt, trace: str = "") -> None:
        self.attempt = attempt
        self.trace = trace

    def __enter__(self) -> Attempt:
        attempt = self.attempt
        self.token = logs.enter(run_id=attempt.run_id, thread_id=attempt.thread_id,
                                graph=attempt.graph, node=attempt.node, attempt=attempt.attempt)
        hooks.attempt_started(attempt)
        self.span = traces.node_span(attempt, self.trace) if self.trace else None
        if self.span is not None:
            self.span.__enter__()
        self.started = time.perf_counter()
        return attempt

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        attempt = self.attempt
        if kind is not None and attempt.outcome == "done":
            attempt.outcome = "cancelled"
        try:
            if self.span is not None:
                self.span.__exit__(kind, exc, tb)
        finally:
            hooks.attempt_ended(attempt, time.perf_counter() - self.started)
            logs.leave(self.token)
