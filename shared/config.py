"""Per-task ambient values: the running node's config and stream writer.

Set by the worker around each node call (contextvars, so threads started with
`asyncio.to_thread` and concurrent nodes on one loop each see their own).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from arqgraph.runtime import Runtime
from arqgraph.types import StreamWriter

current_config: ContextVar[dict[str, Any] | None] = ContextVar("arqgraph_config", default=None)
current_runtime: ContextVar[Runtime[Any] | None] = ContextVar("arqgraph_runtime", default=None)


def get_config() -> dict[str, Any]:
    """The config of the node running now; raises outside a node, as LangGraph does."""
    config = current_config.get()
    if config is None:
        raise RuntimeError("Called get_config outside of a runnable context")
    return config


def get_runtime() -> Runtime[Any]:
    runtime = current_runtime.get()
    if runtime is None:
        raise RuntimeError("Called get_runtime outside of a runnable context")
    return runtime


def get_stream_writer() -> StreamWriter:
    """The running node's `custom` stream writer (a no-op outside a node)."""
    runtime = current_runtime.get()
    if runtime is None:
        return lambda _chunk: None
    return runtime.stream_writer
