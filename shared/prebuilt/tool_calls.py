"""`run.tool_calls`: one handle per tool call of a v3 event stream, as LangGraph's
`ToolCallTransformer` gives them.

The "tools" stream mode carries each call's `tool-started`, `tool-output-delta`,
`tool-finished` and `tool-error` events (sent from the worker that runs the tool,
`arqgraph.workers.tool_events`). A run compiled with `transformers=[ToolCallTransformer]`
turns those at its own scope into `ToolCallStream`s: the call's name and input at once, its
output deltas as they come, its output or error at the end. The raw events still reach the
`tools` channel unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from langchain_core.messages import ToolMessage

from arqgraph.stream._types import ProtocolEvent, StreamTransformer
from arqgraph.stream.stream_channel import StreamChannel


class ToolCallStream:
    """One tool call as it runs: `tool_call_id`, `tool_name`, `input`; `output_deltas` (iterate
    it, or the handle itself); then `output` or `error`, and `completed`."""

    def __init__(self, tool_call_id: str, tool_name: str,
                 input: dict[str, Any] | None = None) -> None:
        self.tool_call_id = tool_call_id
        self.tool_name = tool_name
        self.input = input
        self._output_deltas: StreamChannel[Any] = StreamChannel()
        self.output: Any = None
        self.error: str | None = None
        self.completed = False

    @property
    def output_deltas(self) -> StreamChannel[Any]:
        """The tool's output deltas in arrival order; closed when the call ends."""
        return self._output_deltas

    def _end(self, output: Any = None, error: str | None = None) -> None:
        self.output, self.error, self.completed = output, error, True
        self._output_deltas.close()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._output_deltas)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._output_deltas.__aiter__()

    def __repr__(self) -> str:
        status = "running" if not self.completed else "failed" if self.error is not None \
            else "completed"
        return (f"ToolCallStream(tool_call_id={self.tool_call_id!r}, "
                f"tool_name={self.tool_name!r}, status={status})")


def _output(value: Any) -> Any:
    """A finished call's output as LangGraph shows it: a tool message's content (also when it
    arrives serialized), else the value."""
    if isinstance(value, ToolMessage):
        return value.content
    if isinstance(value, dict) and value.get("type") == "constructor" and \
            isinstance(value.get("id"), list) and value["id"][-1] == "ToolMessage":
        kwargs = value.get("kwargs")
        return kwargs.get("content") if isinstance(kwargs, dict) else value
    return value


class ToolCallTransformer(StreamTransformer):
    """Turns the "tools" events at its scope into `run.tool_calls`, a channel of
    `ToolCallStream`s. Opt in with `compile(transformers=[ToolCallTransformer])`."""

    _native = True
    required_stream_modes = ("tools",)

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._log: StreamChannel[ToolCallStream] = StreamChannel()
        self._active: dict[str, ToolCallStream] = {}
        self._is_async = False
        self._pump_fn: Callable[[], bool] | None = None
        self._apump_fn: Callable[[], Awaitable[bool]] | None = None

    def init(self) -> dict[str, Any]:
        return {"tool_calls": self._log}

    def _bind_pump(self, fn: Callable[[], bool]) -> None:
        self._pump_fn, self._is_async = fn, False

    def _bind_apump(self, fn: Callable[[], Awaitable[bool]]) -> None:
        self._apump_fn, self._is_async = fn, True

    def _start(self, data: dict[str, Any]) -> ToolCallStream:
        stream = ToolCallStream(data["tool_call_id"], data.get("tool_name", ""), data.get("input"))
        deltas = stream.output_deltas
        deltas._bind(is_async=self._is_async)  # (read as the run is: sync or async)
        deltas._request_more, deltas._arequest_more = self._pump_fn, self._apump_fn
        return stream

    def process(self, event: ProtocolEvent) -> bool:
        params = event["params"]
        if event["method"] != "tools" or tuple(params["namespace"]) != self.scope:
            return True  # (a subgraph's calls are its own run stream's)
        data = params["data"]
        call, kind = data.get("tool_call_id"), data.get("event")
        if call is None:
            return True
        if kind == "tool-started":
            self._active[call] = self._start(data)
            self._log.push(self._active[call])
            return True
        ends = kind in ("tool-finished", "tool-error")
        stream = self._active.pop(call, None) if ends else self._active.get(call)
        if stream is None:
            return True
        if kind == "tool-output-delta":
            stream.output_deltas.push(data.get("delta"))
        elif kind == "tool-finished":
            stream._end(output=_output(data.get("output")))
        elif kind == "tool-error":
            stream._end(error=data.get("message", ""))
        return True

    def finalize(self) -> None:
        """Calls still open when the run ends end without output."""
        for stream in self._active.values():
            stream._end()
        self._active.clear()

    def fail(self, err: BaseException) -> None:
        """Calls still open when the run fails end with its error."""
        for stream in self._active.values():
            stream._end(error=str(err))
        self._active.clear()
