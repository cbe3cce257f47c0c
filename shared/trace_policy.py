"""What a node's trace run records, as LangGraph's `TracePolicy` (re-exported by
`arqgraph.types`): processors of the node's input and output for tracers, which see the
processed value while the node, the graph and other callback handlers see the real one.

The node runs on a worker, which applies the processors and sends the processed values with
the task's events; the producer reports the node's run to its tracers from those events (see
`arqgraph.run_report`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TracePolicy:
    """How a node's run is recorded by tracers: `process_inputs` and `process_outputs` take
    the real value and return the one to record. Not for secrets: other runs (the graph's,
    a model's inside the node) still record theirs."""

    process_inputs: Callable[[Any], Any] | None = None
    process_outputs: Callable[[Any], Any] | None = None


def omit_payload(_value: Any) -> dict[str, Any]:
    """A processor that records nothing of the value: the node's run keeps only its timing."""
    return {}


def recorded(value: Any, process: Callable[[Any], Any] | None) -> tuple[bool, Any]:
    """Whether `process` changes what is recorded of `value`, and what it records. A
    processor that raises records the real value: tracing never breaks a run."""
    if process is None:
        return False, value
    try:
        shown = process(value)
    except Exception:  # noqa: BLE001 - fail open, as LangGraph
        logger.warning("a TracePolicy processor raised; the real value is recorded",
                       exc_info=True)
        return False, value
    return shown is not value, shown
