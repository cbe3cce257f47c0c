"""Per-task ambient values: the running node's config and stream writer.

Set by the worker around each node call (contextvars, so threads started with
`asyncio.to_thread` and concurrent nodes on one loop each see their own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from arqgraph.constants import CONF
from arqgraph.runtime import current_runtime, get_runtime
from arqgraph.types import StreamWriter

__all__ = [
    "CONF", "CONFIG_KEY_RUNTIME", "current_config", "current_runtime", "get_config", "get_runtime",
    "get_store", "get_stream_writer", "merge_configs",
]

CONFIG_KEY_RUNTIME = "__pregel_runtime"
"""The configurable key under which LangGraph hands a node its runtime."""

current_config: ContextVar[dict[str, Any] | None] = ContextVar("arqgraph_config", default=None)
# While a tool runs in a run that streams the "tools" mode: sends its partial outputs
# (`ToolRuntime.emit_output_delta`); None otherwise.
current_tool_writer: ContextVar[Callable[[Any], None] | None] = ContextVar(
    "arqgraph_tool_writer", default=None)
current_pushes: ContextVar[list[tuple[str, Any]] | None] = ContextVar("arqgraph_pushes",
                                                                     default=None)
"""The state writes the running node made with `push_message`, before it returned."""


def get_config() -> dict[str, Any]:
    """The config of the node running now; raises outside a node, as LangGraph does."""
    config = current_config.get()
    if config is None:
        raise RuntimeError("Called get_config outside of a runnable context")
    return config


def get_store() -> Any:
    """The store of the node running now (None when the graph was compiled without one);
    raises outside a node, as LangGraph does."""
    return get_runtime().store


def get_stream_writer() -> StreamWriter:
    """The running node's `custom` stream writer (a no-op outside a node)."""
    runtime = current_runtime.get()
    if runtime is None:
        return lambda _chunk: None
    return runtime.stream_writer


def merge_configs(*configs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Configs merged as LangChain merges them: later keys win, but `configurable` and
    `metadata` merge key by key, and `tags` and `callbacks` add up."""
    merged: dict[str, Any] = {}
    for config in configs:
        for key, value in (config or {}).items():
            if key in ("configurable", "metadata") and isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            elif key == "tags" and value is not None:
                merged[key] = sorted(set(merged.get(key, [])) | set(value))
            elif key == "callbacks" and value is not None and merged.get(key):
                before = merged[key]
                if isinstance(before, list) and isinstance(value, list):
                    merged[key] = before + value
                else:
                    merged[key] = value
            else:
                merged[key] = value
    return merged
