"""The "tools" stream mode: a node's LangChain tool calls as they run.

A callback handler in the node's config sends `tool-started` (with the call's input),
`tool-output-delta` (what the tool passes to `ToolRuntime.emit_output_delta`), and
`tool-finished` or `tool-error`, each keyed by the tool call's id, as LangGraph 1.2 does. A
tool stopped by an interrupt or a drain is paused, not failed: it tells nothing then, and
starts again when the run goes on. Needs `langchain-core` (the `langchain` extra).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Token
from typing import Any
from uuid import UUID

from arqgraph.config import current_tool_writer
from arqgraph.constants import TAG_NOSTREAM
from arqgraph.core import codec
from arqgraph.errors import GraphDrained, GraphInterrupt


def tools_handler(emit: Callable[[Any], None]) -> Any:
    """A handler sending a node's tool calls to `emit` as "tools" events."""
    from langchain_core.callbacks import BaseCallbackHandler

    class ToolEvents(BaseCallbackHandler):
        run_inline = True  # (in the tool's thread, in order)

        def __init__(self) -> None:
            self.calls: dict[UUID, tuple[str, Token[Any]]] = {}

        def on_tool_start(self, serialized: Any, input_str: str, *, run_id: UUID,
                          tags: list[str] | None = None, inputs: Any = None,
                          **kwargs: Any) -> None:
            if tags and TAG_NOSTREAM in tags:
                return
            call = str(kwargs.get("tool_call_id") or run_id)
            name = (serialized or {}).get("name") or kwargs.get("name") or ""
            token = current_tool_writer.set(lambda delta: send(
                {"event": "tool-output-delta", "tool_call_id": call, "delta": delta}))
            self.calls[run_id] = (call, token)
            send({"event": "tool-started", "tool_call_id": call, "tool_name": name,
                  **({"input": inputs} if inputs is not None else {})})

        def on_tool_end(self, output: Any, *, run_id: UUID, **_: Any) -> None:
            if (call := self._ended(run_id)) is not None:
                send({"event": "tool-finished", "tool_call_id": call, "output": output})

        def on_tool_error(self, error: BaseException, *, run_id: UUID, **_: Any) -> None:
            call = self._ended(run_id)
            if call is not None and not isinstance(error, GraphInterrupt | GraphDrained):
                send({"event": "tool-error", "tool_call_id": call, "message": str(error)})

        def _ended(self, run_id: UUID) -> str | None:
            if (found := self.calls.pop(run_id, None)) is None:
                return None
            call, token = found
            try:
                current_tool_writer.reset(token)
            except ValueError:  # (ended in another context than it started in)
                pass
            return call

    def send(payload: dict[str, Any]) -> None:
        try:
            codec.packb(payload)
        except Exception:  # (an output the wire cannot carry: shown as its text)
            payload = {k: v if k in ("event", "tool_call_id", "tool_name") else repr(v)
                       for k, v in payload.items()}
        emit(("tools", payload))

    return ToolEvents()
