"""Prometheus metrics of an orchestrator or a worker, served on `--metrics-port` (off by default).

`install` puts `PrometheusHooks` in place of the engine's no-op hooks (`arqgraph.observe`):
each event is a counter's or a histogram's update in this process's memory, nothing more;
gauges that a scrape can compute (tasks in flight, slots) are read when scraped, and the queue's
depth is sampled now and then (`sample_queue_depth`). Labels are bounded: graph, node, status,
outcome, queue, never a run id. docs/operations.md lists every metric for Grafana.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from arqgraph.observe import Attempt, Hooks, set_hooks
from arqgraph.observe.logs import ObserveSettingError

log = logging.getLogger("arqgraph.metrics")

# from 0.5 ms to 10 min: nodes wrapping LLM calls take seconds, trivial ones (and the wait of a
# job on an idle pool) under a millisecond
SECONDS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300,
           600)
COMMIT_SECONDS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1)
RUN_SECONDS = (.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)


class Metrics:
    """Every metric of the arqgraph processes, registered in `registry`."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...],
                      buckets: tuple[float, ...] = SECONDS) -> Histogram:
            return Histogram(name, doc, labels, registry=registry, buckets=buckets)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.runs_started = counter(
            "arqgraph_runs_started_total", "Runs put on their first step, by graph.", ("graph",))
        self.runs_ended = counter(
            "arqgraph_runs_ended_total", "Runs ended, by graph and final status (done, failed, "
            "cancelled, interrupted).", ("graph", "status"))
        self.run_duration = histogram(
            "arqgraph_run_duration_seconds", "From a run's submit to its end.",
            ("graph", "status"), RUN_SECONDS)
        self.node_duration = histogram(
            "arqgraph_node_duration_seconds", "One attempt at a node, on its worker.",
            ("graph", "node"))
        self.queue_wait = histogram(
            "arqgraph_node_queue_wait_seconds", "From a node's job being due in the queue to a "
            "worker starting it.", ("graph", "node"))
        self.attempts = counter(
            "arqgraph_node_attempts_total", "Attempts at nodes (and @task calls), by how they "
            "ended (done, failed, timeout, interrupted, cancelled, deferred).",
            ("graph", "node", "outcome"))
        self.retries = counter(
            "arqgraph_node_retries_total", "Attempts that failed and were retried under the "
            "node's retry policy.", ("graph", "node"))
        self.in_flight = gauge("arqgraph_tasks_in_flight", "Nodes this worker runs now.")
        self.slots = gauge("arqgraph_worker_slots", "Nodes this worker may run at once "
                           "(--concurrency).")
        self.queue_depth = gauge(
            "arqgraph_queue_depth", "Jobs in the queue not yet finished (due, deferred or "
            "running), sampled every few seconds.", ("queue",))
        self.commits = histogram(
            "arqgraph_commit_seconds", "Round trip of a run's commit, by kind (step: a move on "
            "to the next superstep; other: a start or an end).", ("kind",), COMMIT_SECONDS)
        self.refused = counter(
            "arqgraph_jobs_refused_total", "Jobs a worker failed instead of running them (the "
            "dead letters), by the error's type: ValidationError (not a task), LookupError (a "
            "graph it does not serve), GraphMismatchError, TaskLostError, ...",
            ("graph", "reason"))
        self.heartbeats = counter(
            "arqgraph_worker_heartbeats_total", "Turns of the worker's loop looking for jobs.")
        self.last_heartbeat = gauge(
            "arqgraph_worker_last_heartbeat_timestamp_seconds", "When the worker last looked "
            "for jobs (Unix time).")


class PrometheusHooks(Hooks):
    """Counts the engine's events in `metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics
        self._step_commit = metrics.commits.labels("step")
        self._other_commit = metrics.commits.labels("other")
        self._nodes: dict[tuple[str, str], _NodeMetrics] = {}  # (`labels()` costs microseconds)

    def _node(self, graph: str, node: str) -> _NodeMetrics:
        found = self._nodes.get((graph, node))
        if found is None:
            m = self.m
            found = self._nodes[graph, node] = _NodeMetrics(
                m.node_duration.labels(graph, node), m.queue_wait.labels(graph, node),
                m.retries.labels(graph, node), {})
        return found

    def run_started(self, graph: str) -> None:
        self.m.runs_started.labels(graph).inc()

    def run_ended(self, graph: str, status: str, seconds: float | None) -> None:
        self.m.runs_ended.labels(graph, status).inc()
        if seconds is not None:
            self.m.run_duration.labels(graph, status).observe(max(seconds, 0.0))

    def committed(self, seconds: float, step: bool) -> None:
        (self._step_commit if step else self._other_commit).observe(seconds)

    def attempt_started(self, attempt: Attempt) -> None:
        if attempt.queued is not None:
            self._node(attempt.graph, attempt.node).queue_wait.observe(max(attempt.queued, 0.0))

    def attempt_ended(self, attempt: Attempt, seconds: float) -> None:
        node = self._node(attempt.graph, attempt.node)
        node.duration.observe(seconds)
        outcome = node.attempts.get(attempt.outcome)
        if outcome is None:
            outcome = node.attempts[attempt.outcome] = self.m.attempts.labels(
                attempt.graph, attempt.node, attempt.outcome)
        outcome.inc()
        if attempt.retried:
            node.retries.inc()

    def job_refused(self, graph: str, reason: str) -> None:
        self.m.refused.labels(graph, reason).inc()

    def heartbeat(self) -> None:
        self.m.heartbeats.inc()
        self.m.last_heartbeat.set(time.time())


class _NodeMetrics(NamedTuple):
    """One node's children of the node metrics."""

    duration: Histogram
    queue_wait: Histogram
    retries: Counter
    attempts: dict[str, Counter]  # by outcome


_installed: Metrics | None = None


def install() -> Metrics:
    """Count this process's events from now on (idempotent): the metrics, in the default
    registry (with the process's CPU, memory and Python's collectors beside them)."""
    global _installed
    if _installed is None:
        _installed = Metrics()
        set_hooks(PrometheusHooks(_installed))
    return _installed


def serve(port: int, address: str = "0.0.0.0") -> Metrics:
    """Install the metrics and serve them at http://address:port/metrics (a thread of its
    own, Prometheus's text format). Raises ObserveSettingError for a port out of range or in
    use."""
    if not 0 < port < 65536:
        raise ObserveSettingError(f"--metrics-port {port} is not a TCP port (1 to 65535)")
    try:
        server, _ = start_http_server(port, address)
    except OSError as exc:
        raise ObserveSettingError(
            f"--metrics-port {port}: cannot serve metrics on {address}:{port}: {exc.strerror}"
        ) from None
    metrics = install()  # (the metrics register with the registry the server reads when asked)
    log.info("metrics at http://%s:%d/metrics", address, server.server_port)
    return metrics


def watch_worker(metrics: Metrics, in_flight: Callable[[], float], slots: int) -> None:
    """A worker's gauges, read when scraped."""
    metrics.in_flight.set_function(in_flight)
    metrics.slots.set(slots)


async def sample_queue_depth(
    metrics: Metrics, queue: str, depth: Callable[[], Awaitable[int]], every: float = 5.0
) -> None:
    """Set the queue's depth gauge every `every` seconds until cancelled (one ZCARD each: an
    idle pool pays one command every few seconds). A failed read (Redis away) skips a turn."""
    gauge = metrics.queue_depth.labels(queue)
    while True:
        try:
            gauge.set(await depth())
        except Exception as exc:
            log.debug("could not read the depth of queue %s: %s", queue, exc)
        await asyncio.sleep(every)
