"""The `runtime` a node may ask for: its run's context and stream writer."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from arqgraph.types import StreamWriter

ContextT = TypeVar("ContextT")


def _drop(_: Any) -> None:
    return None


def _beat() -> None:
    return None


@dataclass(frozen=True)
class Runtime(Generic[ContextT]):
    """What LangGraph injects as `runtime`: the run's static context and a stream writer."""

    context: ContextT = None  # type: ignore[assignment]
    stream_writer: StreamWriter = field(default=_drop)
    store: Any = None
    previous: Any = None
    heartbeat: Callable[[], None] = field(default=_beat)
    """Tell the runtime the node is making progress (it refreshes an idle timeout)."""


current_runtime: ContextVar[Runtime[Any] | None] = ContextVar("arqgraph_runtime", default=None)


def get_runtime(context_schema: type[ContextT] | None = None) -> Runtime[ContextT]:
    """The runtime of the node running now (`context_schema` only types the result); raises
    outside a node, as LangGraph does."""
    runtime = current_runtime.get()
    if runtime is None:
        raise RuntimeError("Called get_runtime outside of a runnable context")
    return runtime
