"""`run.messages`: one chat model stream per model call at the run's own scope.

A model called in a node streams protocol events (message-start, content-block deltas,
message-finish) keyed by its callback run id; a node that returns a finished AI message
without streaming it shows as a stream replayed from that message. Streams are LangChain's
`ChatModelStream` (needs `arqgraph[langchain]`); the transformer imports it only once a
message comes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from arqgraph.stream._types import ProtocolEvent, StreamTransformer
from arqgraph.stream.stream_channel import StreamChannel


class MessagesTransformer(StreamTransformer):
    """Routes "messages" events to a chat model stream per model call."""

    _native = True
    required_stream_modes = ("messages",)

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._log: StreamChannel[Any] = StreamChannel()
        self._by_run: dict[str, Any] = {}
        self._ignored_runs: set[str] = set()  # tool messages' streams: not chat
        self._pump_fn: Callable[[], bool] | None = None
        self._apump_fn: Callable[[], Awaitable[bool]] | None = None
        self._scope_list = list(scope)

    def init(self) -> dict[str, Any]:
        return {"messages": self._log}

    def _bind_pump(self, fn: Callable[[], bool]) -> None:
        self._pump_fn = fn

    def _bind_apump(self, fn: Callable[[], Awaitable[bool]]) -> None:
        self._apump_fn = fn

    def _make_stream(self, *, namespace: list[str], node: str | None,
                     message_id: str | None) -> Any:
        """A stream whose readers pull the run forward, async when the run is."""
        from langchain_core.language_models.chat_model_stream import (
            AsyncChatModelStream,
            ChatModelStream,
        )

        if self._apump_fn is not None or self._pump_fn is None:
            stream: Any = AsyncChatModelStream(namespace=namespace, node=node,
                                               message_id=message_id)
            if self._apump_fn is not None:
                stream.set_arequest_more(self._apump_fn)
            return stream
        stream = ChatModelStream(namespace=namespace, node=node, message_id=message_id)
        stream.set_request_more(self._pump_fn)
        return stream

    def process(self, event: ProtocolEvent) -> bool:
        params = event["params"]
        if event["method"] != "messages" or params["namespace"] != self._scope_list:
            return True
        payload, metadata = params["data"]
        metadata = metadata or {}
        node = metadata.get("langgraph_node")
        if isinstance(payload, dict) and "event" in payload:
            self._route(payload, str(metadata.get("run_id", "")), node)
        elif _is_whole_chat_message(payload):
            self._replay(payload, node)
        return True

    def _route(self, event: dict[str, Any], run_id: str, node: str | None) -> None:
        kind = event.get("event")
        if kind == "message-start":
            if event.get("role") == "tool":
                self._ignored_runs.add(run_id)
                return
            message_id = event.get("message_id")
            stream = self._make_stream(namespace=[], node=node, message_id=(
                None if message_id is None else str(message_id)))
            self._by_run[run_id] = stream
            self._log.push(stream)
            stream.dispatch(event)
        elif run_id in self._ignored_runs:
            if kind == "message-finish":
                self._ignored_runs.discard(run_id)
        elif (stream := self._by_run.get(run_id)) is not None:
            stream.dispatch(event)
            if kind == "message-finish":
                del self._by_run[run_id]

    def _replay(self, message: Any, node: str | None) -> None:
        from langchain_core.language_models._compat_bridge import message_to_events

        stream = self._make_stream(namespace=[], node=node, message_id=message.id)
        for event in message_to_events(message, message_id=message.id):
            stream.dispatch(event)
        self._log.push(stream)

    def finalize(self) -> None:
        self._by_run.clear()
        self._ignored_runs.clear()

    def fail(self, err: BaseException) -> None:
        """Streams still open when the run fails fail with it."""
        for stream in self._by_run.values():
            stream.fail(err)
        self.finalize()


def _is_whole_chat_message(payload: Any) -> bool:
    """A finished message a node returned (not a streamed chunk, not a tool's result)."""
    try:
        from langchain_core.messages import AIMessageChunk, BaseMessage, ToolMessage
    except ImportError:
        return False
    return isinstance(payload, BaseMessage) and not isinstance(
        payload, AIMessageChunk | ToolMessage)
