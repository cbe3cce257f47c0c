"""OpenTelemetry traces of runs (the `otel` extra: without `opentelemetry-api`, or without an SDK
configured by the application, every function here does nothing and costs next to nothing).

One trace per run: its root span `run <graph>` is made by the producer as it submits the run,
linked to the producer's current span (a link, not a parent: a producer span that submits a
thousand runs does not become one trace of them all). Each superstep's commit makes a span
`superstep <n>` under it, in whichever process commits the step (an orchestrator, or the
worker that ran the previous step's only task); each attempt at a node makes a span `node
<name>` under its superstep's, on the worker that runs it, current while the node runs (so
spans of the node's own code, and its `@task` calls, nest under it). Contexts cross processes
as W3C `traceparent` strings: the run's and its current step's in the run's hash, the step's
in each job's message (`protocol.TaskJob.trace`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the `otel` extra is not installed: no traces
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from arqgraph.observe import Attempt

TRACER = "arqgraph"
_propagator = TraceContextTextMapPropagator() if trace is not None else None


def _tracer() -> Any:
    """The tracer, or None while no SDK is configured (the API alone records nothing)."""
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider.get_tracer(TRACER)


def _context_of(traceparent: str) -> Any:
    assert _propagator is not None
    return _propagator.extract({"traceparent": traceparent}) if traceparent else None


def _traceparent(span: Any) -> str:
    assert _propagator is not None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


def run_trace(graph: str, run_id: str) -> str:
    """Start the trace of a run being submitted: its root span, linked to the caller's current
    span if any. Returns the root's `traceparent` ("" when not tracing)."""
    tracer = _tracer()
    if tracer is None:
        return ""
    caller = trace.get_current_span().get_span_context()
    links = [trace.Link(caller)] if caller.is_valid else []
    span = tracer.start_span(f"run {graph}", context=otel_context.Context(),
                             kind=trace.SpanKind.PRODUCER, links=links,
                             attributes={"arqgraph.graph": graph, "arqgraph.run_id": run_id})
    span.end()
    return _traceparent(span)


def step_trace(run: str, graph: str, run_id: str, step: int, tasks: int) -> str:
    """The span of a superstep being committed, under its run's (`run`, a traceparent).
    Returns its `traceparent`, which the step's jobs carry; `run` itself when not tracing here
    (the nodes' spans then hang from the run's). An untraced run asks nothing of the
    tracing SDK: looking up its provider reads the environment, at every step."""
    if not run:
        return run
    tracer = _tracer()
    if tracer is None:
        return run
    span = tracer.start_span(f"superstep {step}", context=_context_of(run),
                             kind=trace.SpanKind.PRODUCER,
                             attributes={"arqgraph.graph": graph, "arqgraph.run_id": run_id,
                                         "arqgraph.step": step, "arqgraph.tasks": tasks})
    span.end()
    return _traceparent(span)


def current_or(fallback: str) -> str:
    """The current span's `traceparent` (a node's, enqueuing a `@task` call), else `fallback`."""
    if trace is None:
        return fallback
    span = trace.get_current_span()
    return _traceparent(span) if span.get_span_context().is_valid else fallback


@contextmanager
def _span(attempt: Attempt, parent: str) -> Iterator[None]:
    tracer = _tracer()
    attributes = {"arqgraph.graph": attempt.graph, "arqgraph.node": attempt.node,
                  "arqgraph.run_id": attempt.run_id, "arqgraph.step": attempt.step,
                  "arqgraph.attempt": attempt.attempt}
    with tracer.start_as_current_span(
            f"node {attempt.node}", context=_context_of(parent), kind=trace.SpanKind.CONSUMER,
            attributes=attributes, record_exception=True) as span:
        yield
        span.set_attribute("arqgraph.outcome", attempt.outcome)
        if attempt.outcome not in ("done", "interrupted"):
            span.set_status(trace.StatusCode.ERROR, attempt.error or attempt.outcome)


def node_span(attempt: Attempt, parent: str) -> Any:
    """A context manager: the span of a node attempt, under its step's span (`parent`),
    current inside; it notes how the attempt ended (`attempt.outcome`)."""
    if not parent or _tracer() is None:
        return nullcontext()
    return _span(attempt, parent)
