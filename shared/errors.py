"""Errors a graph run can raise, named as in LangGraph plus arqgraph's own."""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from typing import Any


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


class GraphMismatchError(RuntimeError):
    """A process loaded a graph whose structure differs from the one a run was started with."""


class SerializationError(TypeError):
    """A value cannot cross the wire; the message names the key and the type."""


class RunCancelledError(Exception):
    """The run was cancelled before it finished."""


class ThreadBusyError(RuntimeError):
    """A thread runs one run at a time; another was submitted while one is unfinished."""


class ResumeError(RuntimeError):
    """A run cannot resume its thread as asked (which interrupt, which checkpoint)."""


class GraphInterrupt(Exception):  # noqa: N818 - LangGraph's name
    """Raised by `interrupt()` inside a node: the node stops until its run is resumed."""

    def __init__(self, interrupts: tuple[Any, ...] = ()) -> None:
        super().__init__(interrupts)
        self.interrupts = interrupts


class NodeTimeoutError(Exception):
    """A node attempt ran longer than its timeout and was cancelled.

    As in LangGraph it is not a `TimeoutError` (an `OSError`), so the default retry policy
    retries it.
    """

    def __init__(self, node: str, elapsed: float | None = None, *, timeout: float = 0.0) -> None:
        if elapsed is None:  # rebuilt from the wire: `node` is the whole message
            super().__init__(node)
            self.node, self.elapsed, self.timeout = "", 0.0, 0.0
            return
        super().__init__(
            f"Node '{node}' exceeded its run timeout of {timeout:.3f}s (elapsed: {elapsed:.3f}s)."
        )
        self.node, self.elapsed, self.timeout = node, elapsed, timeout


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


@dataclass(frozen=True)
class ErrorInfo:
    """An exception as it crosses the wire: enough to rebuild it, or at least to report it."""

    type: str
    module: str
    message: str
    traceback: str = ""
    node: str = ""
    args: tuple[str | int | float | bool | None, ...] | None = None

    @classmethod
    def of(cls, exc: BaseException, node: str = "") -> ErrorInfo:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        plain = all(isinstance(a, str | int | float | bool | type(None)) for a in exc.args)
        args = tuple(exc.args) if plain else None
        return cls(type(exc).__qualname__, type(exc).__module__, str(exc), tb, node, args)

    def rebuild(self) -> BaseException:
        """The same exception type in this process when it is already loaded here.

        Only classes of modules this process has imported are considered (nothing is imported
        on the word of a payload); otherwise a `RemoteNodeError` carries the remote details.
        """
        module = sys.modules.get(self.module)
        cls = getattr(module, self.type, None) if module else None
        exc: BaseException | None = None
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                exc = cls(*self.args) if self.args is not None else cls(self.message)
            except Exception:
                exc = None
        if exc is not None and getattr(exc, "node", None) == "":
            exc.node = self.node  # type: ignore[attr-defined]
        if exc is None:
            exc = RemoteNodeError(
                self.node, f"{self.module}.{self.type}", self.message, self.traceback
            )
        if self.traceback:
            where = f"in node {self.node!r} " if self.node else ""
            exc.add_note(f"arqgraph: raised {where}on a remote process:\n{self.traceback}")
        return exc
