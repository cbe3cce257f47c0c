"""The `runtime` a node may ask for: its run's context and stream writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from arqgraph.types import StreamWriter

ContextT = TypeVar("ContextT")


def _drop(_: Any) -> None:
    return None


@dataclass(frozen=True)
class Runtime(Generic[ContextT]):
    """What LangGraph injects as `runtime`: the run's static context and a stream writer."""

    context: ContextT = None  # type: ignore[assignment]
    stream_writer: StreamWriter = field(default=_drop)
    store: Any = None
    previous: Any = None
