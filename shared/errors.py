"""Errors a graph run can raise, named as in LangGraph plus arqgraph's own."""

from __future__ import annotations

import contextlib
import sys
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import pydantic
from pydantic_core import PydanticCustomError


class ErrorCode(Enum):
    """The troubleshooting codes LangGraph's error messages name."""

    GRAPH_RECURSION_LIMIT = "GRAPH_RECURSION_LIMIT"
    INVALID_CONCURRENT_GRAPH_UPDATE = "INVALID_CONCURRENT_GRAPH_UPDATE"
    INVALID_GRAPH_NODE_RETURN_VALUE = "INVALID_GRAPH_NODE_RETURN_VALUE"
    MULTIPLE_SUBGRAPHS = "MULTIPLE_SUBGRAPHS"
    INVALID_CHAT_HISTORY = "INVALID_CHAT_HISTORY"


class EmptyChannelError(Exception):
    """A channel was read before it had a value."""


class GraphBubbleUp(Exception):  # noqa: N818 - LangGraph's name
    """What a node raises to hand control to the runtime rather than fail: an interrupt, a
    command for the parent graph, a drain."""


class GraphDrained(GraphBubbleUp):
    """A run stopped at a superstep boundary because it was asked to drain; its checkpoint is
    saved and it can be resumed."""

    def __init__(self, reason: str = "shutdown") -> None:
        super().__init__(f"Graph drained: {reason}")
        self.reason = reason


class InvalidUpdateError(Exception):
    """A node's update cannot be applied (non-dict result, two values for a plain key)."""


class GraphRecursionError(RecursionError):
    """The run needed more supersteps than `recursion_limit` allows."""


class EmptyInputError(Exception):
    """A run was started without input."""


class InvalidInputError(ValueError):
    """The input does not fit the graph's state schema; the message names the field."""


class UnknownGraphError(LookupError):
    """No orchestrator serves a graph of this name."""


class UnknownRunError(LookupError):
    """No run of this id (never submitted, or finished longer ago than its retention)."""


class GraphMismatchError(RuntimeError):
    """A process loaded a graph whose structure differs from the one a run was started with."""


class GraphConflictError(RuntimeError):
    """An orchestrator would register a graph that a live orchestrator serves on another queue
    or with another fingerprint: runs would go to workers that cannot run them."""


class SerializationError(TypeError):
    """A value cannot cross the wire; the message names the key and the type."""


class CorruptDataError(ValueError):
    """Data arqgraph read from Redis cannot be read (bad bytes, bad msgpack, wrong types, an
    unknown name): it was set aside as a dead letter (`arqgraph dead-letters`) and only the run
    it belongs to failed; the message names where it was and why."""


class RunNotFoundError(LookupError):
    """A run's records are gone from Redis (expired after its retention, or deleted): its result
    and events can no longer be read."""


class EventsDroppedError(RuntimeError):
    """A run's events were read too late: the ones not yet read were trimmed from its stream,
    which keeps a bounded number (`arqgraph.protocol.EVENTS_KEPT`)."""


class RunCancelledError(Exception):
    """The run was cancelled before it finished."""


class ThreadBusyError(RuntimeError):
    """A thread runs one run at a time; another was submitted while one is unfinished."""


class ResumeError(RuntimeError):
    """A run cannot resume its thread as asked (which interrupt, which checkpoint)."""


class CheckpointPrunedError(LookupError):
    """A checkpoint id its thread no longer has, on a thread whose history is kept to a depth
    (the orchestrator's `--history-depth`): it was pruned with the older checkpoints, so a
    resume, a time travel or a read of its state cannot start from it. (On a thread that keeps
    every checkpoint, an id it lacks means no checkpoint, as in LangGraph.)"""


class GraphInterrupt(GraphBubbleUp):
    """Raised by `interrupt()` inside a node: the node stops until its run is resumed."""

    def __init__(self, interrupts: Sequence[Any] = ()) -> None:
        super().__init__(interrupts)
        self.interrupts = tuple(interrupts)


class NodeInterrupt(GraphInterrupt):
    """Raised by a node to stop at an interrupt with `value` (LangGraph's older way; use
    `interrupt()`)."""

    def __init__(self, value: Any, id: str | None = None) -> None:
        warnings.warn("NodeInterrupt is deprecated. Please use `arqgraph.types.interrupt` instead.",
                      DeprecationWarning, stacklevel=2)
        from arqgraph.types import Interrupt

        super().__init__([Interrupt(value=value, id=id or "")])


class ParentCommand(GraphBubbleUp):
    """Carries a `Command(graph=Command.PARENT)` from a subgraph's node to its parent graph."""

    args: tuple[Any]

    def __init__(self, command: Any) -> None:
        super().__init__(command)


class TaskNotFound(Exception):  # noqa: N818 - LangGraph's name
    """A worker was asked to run a task its graph does not have."""


class UnknownInterruptError(Exception):
    """A resume does not match the pending interrupts: it names interrupts that are not pending
    (`reason="not_pending"`), is an empty map (`"empty_map"`), or is one value while several
    interrupts wait (`"ambiguous"`). Nothing is written, so they can still be answered."""

    def __init__(
        self, message: str, *, reason: Literal["not_pending", "empty_map", "ambiguous"],
        interrupt_ids: Sequence[str] = (), pending_ids: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.interrupt_ids = tuple(interrupt_ids)
        self.pending_ids = tuple(pending_ids)


class NodeCancelledError(Exception):
    """A node's own code raised `asyncio.CancelledError`: a failure of the node, not a
    cancellation of the run."""

    def __init__(self, node: str, message: str | None = None) -> None:
        super().__init__(message or f"Node {node!r} raised asyncio.CancelledError")
        self.node = node


INVALID_RESUME = "_arqgraph_invalid_resume"


def is_invalid_resume(error: BaseException) -> bool:
    """Whether `error` was raised because a resume value did not fit the interrupt's
    `response_schema`."""
    return bool(getattr(error, INVALID_RESUME, False))


class NodeTimeoutError(Exception):
    """A node attempt ran longer than its timeout and was cancelled. `kind` says which of the
    node's timeouts fired (`"run"`: its whole attempt; `"idle"`: no progress) and `timeout`
    how long that one is.

    As in LangGraph it is not a `TimeoutError` (an `OSError`), so the default retry policy
    retries it.
    """

    def __init__(
        self, node: str, elapsed: float, *, kind: Literal["idle", "run"],
        idle_timeout: float | None = None, run_timeout: float | None = None,
    ) -> None:
        if kind == "idle":
            if idle_timeout is None:
                raise ValueError("idle_timeout is required when kind='idle'")
            timeout = idle_timeout
            message = (f"Node '{node}' exceeded its idle timeout of {timeout:.3f}s without making "
                       f"progress (elapsed: {elapsed:.3f}s).")
        elif kind == "run":
            if run_timeout is None:
                raise ValueError("run_timeout is required when kind='run'")
            timeout = run_timeout
            message = (f"Node '{node}' exceeded its run timeout of {timeout:.3f}s "
                       f"(elapsed: {elapsed:.3f}s).")
        else:
            raise ValueError("kind must be 'idle' or 'run'")
        super().__init__(message)
        self.node, self.elapsed, self.kind, self.timeout = node, elapsed, kind, timeout
        self.idle_timeout, self.run_timeout = idle_timeout, run_timeout


class TaskLostError(RuntimeError):
    """A task was started too many times without finishing: each time its worker died or lost
    its lease (a crash, an out-of-memory kill, a node that takes the process down)."""


class UpdateTooLargeError(ValueError):
    """A node's update is over the size limit for one message, or Redis refused it for lack of
    memory; the message names the node and its largest keys."""


@dataclass(frozen=True)
class NodeError:
    """What a node's `error_handler` gets (as a parameter `error: NodeError`): which node
    failed, and with what, after its retries."""

    node: str
    error: BaseException


class RemoteNodeError(RuntimeError):
    """A node failed on a worker with an exception this process cannot rebuild as its own type."""

    def __init__(self, node: str, exc_type: str, message: str, traceback: str = "") -> None:
        super().__init__(f"node {node!r} raised {exc_type}: {message}")
        self.node = node
        self.exc_type = exc_type
        self.remote_message = message
        self.remote_traceback = traceback


Plain = str | int | float | bool | None


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None))


def _data(value: Any) -> bool:
    """Plain values, and lists and dicts of them: what any wire can carry."""
    if isinstance(value, list | tuple):
        return all(_data(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _data(v) for k, v in value.items())
    return _plain(value)


def _validation_error(details: Mapping[str, Any]) -> pydantic.ValidationError:
    """A pydantic ValidationError rebuilt with the same title, errors and messages: of
    pydantic's own error types where they rebuild to the same message, else each message
    kept as it was under its own type."""
    try:
        exc = pydantic.ValidationError.from_exception_data(details["title"], [
            {"type": e["type"], "loc": tuple(e["loc"]), "input": e["input"],
             "ctx": e.get("ctx") or {}}
            for e in details["errors"]
        ])
        if [e["msg"] for e in exc.errors()] == [e["msg"] for e in details["errors"]]:
            return exc
    except (KeyError, TypeError, ValueError):
        pass
    return pydantic.ValidationError.from_exception_data(details["title"], [
        {"type": PydanticCustomError(e["type"], e["msg"].replace("{", "{{").replace("}", "}}")),
         "loc": tuple(e["loc"]), "input": e["input"]}
        for e in details["errors"]
    ])


@dataclass(frozen=True)
class ErrorInfo:
    """An exception as it crosses the wire: enough to rebuild it, or at least to report it.

    `args` are the exception's arguments and `attrs` its plain attributes (`node`, `timeout`,
    ...), when they are plain values, so that the rebuilt exception has them too.
    """

    type: str
    module: str
    message: str
    traceback: str = ""
    node: str = ""
    args: tuple[Plain, ...] | None = None
    attrs: Mapping[str, Plain] | None = None
    validation: Mapping[str, Any] | None = None  # a pydantic ValidationError's title and errors

    @classmethod
    def of(cls, exc: BaseException, node: str = "") -> ErrorInfo:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        args = tuple(exc.args) if all(_plain(a) for a in exc.args) else None
        attrs = {k: v for k, v in getattr(exc, "__dict__", {}).items()
                 if not k.startswith("__") and _plain(v)}
        validation = None
        if isinstance(exc, pydantic.ValidationError):
            validation = {"title": exc.title, "errors": [
                {"type": e["type"], "loc": [p for p in e["loc"] if _plain(p)], "msg": e["msg"],
                 "input": e["input"] if _data(e["input"]) else repr(e["input"]),
                 **({"ctx": e["ctx"]} if _data(e.get("ctx")) and e.get("ctx") else {})}
                for e in exc.errors(include_url=False)
            ]}
        return cls(type(exc).__qualname__, type(exc).__module__, str(exc), tb, node, args,
                   attrs or None, validation)

    def rebuild(self) -> BaseException:
        """The same exception type in this process when it is already loaded here.

        Only classes of modules this process has imported are considered (nothing is imported
        on the word of a payload); otherwise a `RemoteNodeError` carries the remote details.
        An exception with attributes of its own is rebuilt without calling its constructor
        (which may not take its own `args` back), from its arguments and attributes.
        """
        module = sys.modules.get(self.module)
        cls = getattr(module, self.type, None) if module else None
        exc: BaseException | None = None
        if self.validation is not None:
            exc = _validation_error(self.validation)
        elif isinstance(cls, type) and issubclass(cls, Exception):
            args = self.args if self.args is not None else (self.message,)
            try:
                exc = None if self.attrs else cls(*args)
            except Exception:
                pass
            if exc is None:  # its fields restored below, its constructor not run again
                exc = cls.__new__(cls, *args)
                Exception.__init__(exc, *args)
        if exc is not None:  # (a ValidationError's: is_invalid_resume's mark)
            for key, value in (self.attrs or {}).items():
                with contextlib.suppress(Exception):
                    setattr(exc, key, value)
        if exc is not None and getattr(exc, "node", None) in ("", None) and self.node:
            with contextlib.suppress(AttributeError):  # (a class may refuse new attributes)
                exc.node = self.node  # type: ignore[attr-defined]
        if exc is None:
            exc = RemoteNodeError(
                self.node, f"{self.module}.{self.type}", self.message, self.traceback
            )
        if self.traceback:
            where = f"in node {self.node!r} " if self.node else ""
            exc.add_note(f"arqgraph: raised {where}on a remote process:\n{self.traceback}")
        return exc
