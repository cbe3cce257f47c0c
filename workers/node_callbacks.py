"""A node's LangChain callbacks, recorded on the worker for the producer's handlers.

When the producer of a run was given callbacks (a tracer, `astream_events`), each node runs
as a chain run under the graph's run, as in LangGraph: the chat models, tools and retrievers
it calls report under it. None of the handlers is here; a recording handler sends every
callback to the run's event stream, in order, and the producer replays them (see
`arqgraph.callbacks`). When one of the producer's handlers streams (`astream_events`), the
recorder is a streaming handler too, so that models stream their tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from uuid import uuid4

from arqgraph.protocol.callbacks import encode_callback

STREAM = "__chain_stream__"  # (not a callback: a chain run's output chunk, for streaming handlers)
TASK, TRACED = "__arqgraph_task", "__arqgraph_traced"  # (see arqgraph.run_report)
METHODS = (
    "on_llm_start", "on_chat_model_start", "on_llm_new_token", "on_llm_end", "on_llm_error",
    "on_chain_start", "on_chain_end", "on_chain_error", "on_tool_start", "on_tool_end",
    "on_tool_error", "on_retriever_start", "on_retriever_end", "on_retriever_error",
    "on_text", "on_retry", "on_agent_action", "on_agent_finish", "on_custom_event",
)


def recorder(emit: Callable[[Any], None], streaming: bool) -> Any:
    """A handler sending every callback it hears to `emit` as a "callbacks" event."""
    from langchain_core.callbacks import BaseCallbackHandler

    bases: tuple[type, ...] = (BaseCallbackHandler,)
    if streaming:
        try:
            from langchain_core.tracers._streaming import _StreamingCallbackHandler
            bases += (_StreamingCallbackHandler,)
        except ImportError:
            pass

    def recording(method: str) -> Callable[..., None]:
        def record(self: Any, *args: Any, **kwargs: Any) -> None:
            emit(("callbacks", encode_callback(method, args, kwargs)))
        return record

    def chunk(run_id: Any, value: Any) -> None:
        emit(("callbacks", encode_callback(STREAM, (), {"run_id": run_id, "chunk": value})))

    async def tap_output_aiter(self: Any, run_id: Any, output: AsyncIterator[Any]
                               ) -> AsyncIterator[Any]:
        async for value in output:  # (a runnable's output chunks, as its run streams them)
            chunk(run_id, value)
            yield value

    def tap_output_iter(self: Any, run_id: Any, output: Iterator[Any]) -> Iterator[Any]:
        for value in output:
            chunk(run_id, value)
            yield value

    namespace: dict[str, Any] = {name: recording(name) for name in METHODS}
    namespace["run_inline"] = True
    if streaming:
        namespace["tap_output_aiter"] = tap_output_aiter
        namespace["tap_output_iter"] = tap_output_iter
    return type("CallbackRecorder", bases, namespace)()


class NodeRun:
    """One node's chain run: started with its input, ended with its update or its error."""

    def __init__(self, emit: Callable[[Any], None], wanted: dict[str, Any], node: str,
                 step: int, metadata: dict[str, Any], tags: list[str]) -> None:
        self.emit = emit
        self.run_id = uuid4()
        self.parent = wanted.get("parent")
        self.node, self.metadata = node, metadata
        self.tags = [f"graph:step:{step}", *tags]  # (the run's own tags, inherited)
        self.recorder = recorder(emit, bool(wanted.get("stream")))
        self.input: Any = None

    def callbacks(self, others: list[Any]) -> Any:
        """The node's callbacks: its runs are children of this one."""
        from langchain_core.callbacks import CallbackManager

        handlers = [self.recorder, *others]
        return CallbackManager(handlers=list(handlers), inheritable_handlers=list(handlers),
                               parent_run_id=self.run_id, tags=["seq:step:1"])

    def _send(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.emit(("callbacks", encode_callback(method, args, {
            "run_id": self.run_id, "parent_run_id": self.parent,
            "tags": self.tags, **kwargs})))

    def start(self, node_input: Any, task: str, traced: tuple[bool, Any] | None) -> None:
        """The node starts on `node_input` (tracers record `traced`'s value, when its
        TracePolicy changed it); `task` is its task's id, which its task calls name."""
        self.input = node_input
        self._send("on_chain_start", None, node_input, name=self.node, metadata=self.metadata,
                   **{TASK: task}, **_traced(traced))

    def end(self, update: Any, traced: tuple[bool, Any] | None) -> None:
        self._send(STREAM, chunk=update)
        self._send("on_chain_end", update, inputs=self.input, **_traced(traced))

    def error(self, exc: BaseException) -> None:
        self._send("on_chain_error", exc)


def _traced(traced: tuple[bool, Any] | None) -> dict[str, Any]:
    return {TRACED: traced[1]} if traced is not None and traced[0] else {}
