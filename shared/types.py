"""Values that nodes and edges hand back to the runtime: Send, Command, RetryPolicy, StreamWriter."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

N = TypeVar("N")

StreamWriter = Callable[[Any], None]
"""The `writer` a node receives: call it with any value to emit a `custom` stream event."""


class Send:
    """Run `node` in the next superstep with `arg` as its whole input instead of the state.

    Used for map-reduce fan-outs: a conditional edge returns one Send per item.
    """

    __slots__ = ("node", "arg")

    def __init__(self, node: str, arg: Any) -> None:
        self.node = node
        self.arg = arg

    def __repr__(self) -> str:
        return f"Send(node={self.node!r}, arg={self.arg!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Send) and (self.node, self.arg) == (other.node, other.arg)

    def __hash__(self) -> int:
        return hash((self.node, repr(self.arg)))


@dataclass
class Command(Generic[N]):
    """A node result that updates state and picks where to go next in one value.

    `Command[Literal["a", "b"]]` as a node's return annotation declares its possible targets.
    """

    graph: str | None = None
    update: Any = None
    resume: Any = None
    goto: Send | Sequence[Send | str] | str = ()

    PARENT: ClassVar[str] = "__parent__"

    def update_items(self) -> list[tuple[str, Any]]:
        """The update as (key, value) pairs, whatever shape the node gave it."""
        if self.update is None:
            return []
        if isinstance(self.update, dict):
            return list(self.update.items())
        if isinstance(self.update, list | tuple) and all(
            isinstance(x, tuple) and len(x) == 2 for x in self.update
        ):
            return list(self.update)
        if hasattr(self.update, "model_dump"):
            return list(self.update.model_dump().items())
        raise TypeError(f"Command.update must be a dict, got {type(self.update).__name__}")

    def goto_targets(self) -> list[Send | str]:
        if isinstance(self.goto, str | Send):
            return [self.goto]
        return list(self.goto)


def default_retry_on(exc: Exception) -> bool:
    """LangGraph's default: retry transient failures, never programming errors."""
    if isinstance(exc, ConnectionError):
        return True
    if isinstance(
        exc,
        ValueError
        | TypeError
        | ArithmeticError
        | ImportError
        | LookupError
        | NameError
        | SyntaxError
        | RuntimeError
        | ReferenceError
        | StopIteration
        | StopAsyncIteration
        | OSError,
    ):
        return False
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return 500 <= status < 600
    return True


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing node is tried again (LangGraph's defaults)."""

    initial_interval: float = 0.5
    backoff_factor: float = 2.0
    max_interval: float = 128.0
    max_attempts: int = 3
    jitter: bool = True
    retry_on: type[Exception] | Sequence[type[Exception]] | Callable[[Exception], bool] = field(
        default=default_retry_on
    )

    def should_retry(self, exc: Exception) -> bool:
        if isinstance(self.retry_on, type):
            return isinstance(exc, self.retry_on)
        if isinstance(self.retry_on, Sequence):
            return isinstance(exc, tuple(self.retry_on))
        return bool(self.retry_on(exc))

    def wait_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (2 is the first retry)."""
        wait = min(self.max_interval, self.initial_interval * self.backoff_factor ** (attempt - 2))
        return wait + random.uniform(0, 1) if self.jitter else wait
