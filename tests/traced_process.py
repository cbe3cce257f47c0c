"""`python -m tests.traced_process <arqgraph command>...`: the `arqgraph` command with an
OpenTelemetry SDK configured first, as an application (or `opentelemetry-instrument`) would,
exporting each span as one JSON line to the file named by $ARQGRAPH_TEST_SPANS, at once."""

from __future__ import annotations

import os
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from arqgraph.cli import main


def one_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


if __name__ == "__main__":
    spans = open(os.environ["ARQGRAPH_TEST_SPANS"], "a", buffering=1)  # (the process's)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=spans,
                                                                        formatter=one_line)))
    trace.set_tracer_provider(provider)
    sys.exit(main(sys.argv[1:]))
