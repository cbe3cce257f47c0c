"""Values that nodes and edges hand to the runtime (Send, Command, RetryPolicy, StreamWriter,
interrupt) and that it hands back (Interrupt, StateSnapshot)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, NamedTuple, TypeVar

import msgpack
import pydantic

try:  # a tool may return a Command: LangChain's tools pass a ToolOutputMixin on unwrapped
    from langchain_core.messages.tool import ToolOutputMixin
except ImportError:  # pragma: no cover - without the `langchain` extra

    class ToolOutputMixin:  # type: ignore[no-redef]
        """Stands in for LangChain's marker of tool outputs when langchain-core is absent."""

from arqgraph.stream_parts import (  # LangGraph has them in its types
    CheckpointPayload,
    CheckpointStreamPart,
    CheckpointTask,
    CustomStreamPart,
    DebugPayload,
    DebugStreamPart,
    GraphOutput,
    MessagesStreamPart,
    StreamPart,
    TaskPayload,
    TaskResultPayload,
    TasksStreamPart,
    UpdatesStreamPart,
    ValuesStreamPart,
)
from arqgraph.trace_policy import TracePolicy, omit_payload  # LangGraph's types too

__all__ = [  # the public names, LangGraph's (`mypy --strict` re-exports only these imports)
    "All", "CachePolicy", "CheckpointPayload", "CheckpointStreamPart",
    "CheckpointTask", "Command", "CustomStreamPart", "DebugPayload", "DebugStreamPart",
    "Durability", "GraphOutput", "Interrupt", "MessagesStreamPart", "Overwrite", "PregelTask",
    "RetryPolicy", "Send", "StateSnapshot", "StateUpdate", "StreamMode", "StreamPart",
    "StreamWriter", "TaskPayload", "TaskResultPayload", "TasksStreamPart", "TimeoutPolicy",
    "TracePolicy", "UpdatesStreamPart", "ValuesStreamPart", "interrupt", "omit_payload",
]

if TYPE_CHECKING:
    from arqgraph.interrupts import InterruptScratch

N = TypeVar("N")

All = Literal["*"]
"""`interrupt_before="*"`: every node."""

StreamMode = Literal["values", "updates", "checkpoints", "tasks", "debug", "messages", "custom"]
"""What `stream(stream_mode=...)` yields."""

Durability = Literal["sync", "async", "exit"]
"""When a run's checkpoints are saved: before each next step starts, while it runs, or only
when the run ends."""

StreamWriter = Callable[[Any], None]
"""The `writer` a node receives: call it with any value to emit a `custom` stream event."""


class Send:
    """Run `node` in the next superstep with `arg` as its whole input instead of the state.

    Used for map-reduce fan-outs: a conditional edge returns one Send per item.
    """

    __slots__ = ("node", "arg", "timeout")

    def __init__(self, node: str, arg: Any,
                 timeout: float | timedelta | TimeoutPolicy | None = None) -> None:
        """`timeout`: the sent task's own timeout policy instead of its node's (a number or a
        timedelta is a run timeout)."""
        self.node = node
        self.arg = arg
        self.timeout = TimeoutPolicy.coerce(timeout)

    def __repr__(self) -> str:
        shown = "" if self.timeout is None else f", timeout={self.timeout!r}"
        return f"Send(node={self.node!r}, arg={self.arg!r}{shown})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Send) and (self.node, self.arg, self.timeout) == (
            other.node, other.arg, other.timeout)

    def __hash__(self) -> int:
        return hash((self.node, repr(self.arg), self.timeout))


@dataclass
class Command(Generic[N], ToolOutputMixin):
    """A node result that updates state and picks where to go next in one value.

    `Command[Literal["a", "b"]]` as a node's return annotation declares its possible targets.
    """

    graph: str | None = None
    update: Any = None
    resume: Any = None
    goto: Send | Sequence[Send | str] | str = ()

    PARENT: ClassVar[str] = "__parent__"

    def __repr__(self) -> str:
        """Only the fields given, as LangGraph shows a Command."""
        shown = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self).items() if v)
        return f"Command({shown})"

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
        if (fields := object_fields(self.update)) is not None:
            return list(fields.items())
        raise TypeError(f"Command.update must be a dict, got {type(self.update).__name__}")

    def goto_targets(self) -> list[Send | str]:
        if isinstance(self.goto, str | Send):
            return [self.goto]
        return list(self.goto)


def object_fields(update: Any) -> dict[str, Any] | None:
    """A state object given as an update (a pydantic model, a dataclass), read as LangGraph
    reads it: its fields that are not None, or that it set, or whose default is not None.
    None for anything else."""
    if isinstance(update, pydantic.BaseModel):
        model = type(update).model_fields
        keys, kept = list(model), update.model_fields_set
        defaults = {k: f.default for k, f in model.items()}
    elif dataclasses.is_dataclass(update) and not isinstance(update, type):
        keys, kept, defaults = [f.name for f in dataclasses.fields(update)], set(), {}
    else:
        return None
    missing = object()
    return {key: value for key in keys if (value := getattr(update, key, missing)) is not missing
            and (value is not None or defaults.get(key, missing) is not None or key in kept)}


OVERWRITE: Literal["__overwrite__"] = "__overwrite__"


@dataclass
class Overwrite:
    """A write that replaces a key's value instead of going through its reducer:
    `return {"messages": Overwrite(["b"])}`. At most one per key and superstep.

    `{"__overwrite__": value}` means the same, as does this class's JSON form."""

    value: Any
    type: Literal["__overwrite__"] = OVERWRITE


def overwrite_of(value: Any) -> tuple[bool, Any]:
    """Whether `value` is an overwrite, in any of its forms, and the value it writes."""
    if isinstance(value, Overwrite):
        return True, value.value
    if isinstance(value, dict):
        if len(value) == 1 and OVERWRITE in value:
            return True, value[OVERWRITE]
        if value.get("type") == OVERWRITE and "value" in value:
            return True, value["value"]
    return False, None


def _frozen(value: Any) -> Any:
    """A value as plain data in a stable order, for a cache key: dicts and sets sorted,
    models and dataclasses by their fields, anything else by its repr."""
    if isinstance(value, dict):
        return ["dict", sorted(([repr(k), _frozen(v)] for k, v in value.items()),
                               key=lambda kv: kv[0])]
    if isinstance(value, set | frozenset):
        return ["set", sorted(repr(_frozen(v)) for v in value)]
    if isinstance(value, list | tuple):
        return [type(value).__name__, [_frozen(v) for v in value]]
    if hasattr(value, "model_dump"):
        return [type(value).__qualname__, _frozen(value.model_dump())]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [type(value).__qualname__,
                _frozen({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})]
    if value is None or isinstance(value, str | int | float | bool | bytes):
        return value
    return ["repr", repr(value)]


def default_cache_key(*args: Any, **kwargs: Any) -> bytes:
    """A node's cache key from its input: the input as plain data in a stable order (no
    pickle, unlike LangGraph's), so equal inputs give equal keys in every process."""
    return msgpack.packb([_frozen(args), _frozen(kwargs)])  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CachePolicy(Generic[N]):
    """Cache a node's results: `key_func` makes a key of the node's input (bytes or str),
    `ttl` is how many seconds an entry lives (None: until cleared)."""

    key_func: Callable[..., str | bytes] = default_cache_key
    ttl: int | None = None


def _seconds(value: float | timedelta | None, field: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ValueError(f"{field} must be greater than 0")
    return seconds


@dataclass(frozen=True)
class TimeoutPolicy:
    """How long a node's attempt may take: `run_timeout` in all, `idle_timeout` without
    progress. Progress is `runtime.heartbeat()`, and, with `refresh_on="auto"`, what the node
    writes to its stream too. An attempt that overruns is cancelled with NodeTimeoutError."""

    run_timeout: float | timedelta | None = None
    idle_timeout: float | timedelta | None = None
    refresh_on: Literal["auto", "heartbeat"] = "auto"

    @classmethod
    def coerce(cls, value: float | timedelta | TimeoutPolicy | None) -> TimeoutPolicy | None:
        """A policy in seconds from a policy, a number of seconds or a timedelta (a run
        timeout); None when it sets no timeout."""
        if value is None:
            return None
        policy = value if isinstance(value, TimeoutPolicy) else cls(run_timeout=value)
        if policy.refresh_on not in ("auto", "heartbeat"):
            raise ValueError("refresh_on must be 'auto' or 'heartbeat'")
        run = _seconds(policy.run_timeout, "run_timeout")
        idle = _seconds(policy.idle_timeout, "idle_timeout")
        if run is None and idle is None:
            return None
        return cls(run_timeout=run, idle_timeout=idle, refresh_on=policy.refresh_on)


class StateUpdate(NamedTuple):
    """One update of `bulk_update_state`: `values` written as if node `as_node` returned them."""

    values: dict[str, Any] | None
    as_node: str | None = None
    task_id: str | None = None


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


# -- interrupts and snapshots ------------------------------------------------------------------


@dataclass(frozen=True)
class Interrupt:
    """A node's question to a human: `value` as passed to `interrupt()`, `id` to resume it by."""

    value: Any
    id: str = ""
    response_schema: Any = None


current_interrupts: ContextVar[InterruptScratch | None] = ContextVar(  # (a task's, as it runs)
    "arqgraph_interrupts", default=None
)


def interrupt(value: Any, *, response_schema: Any = None) -> Any:
    """Stop the node here until its run is resumed with `Command(resume=...)`; then return the
    resume value. The node runs again from its start, and earlier `interrupt()` calls return
    the values they were resumed with.

    `response_schema` (a pydantic model, TypedDict, dataclass or type; or a JSON schema dict,
    shown but not checked) is shown with the interrupt as JSON schema and validates the resume
    value, which `interrupt` then returns validated. A value that does not fit raises pydantic's
    ValidationError (`is_invalid_resume` tells it) and is not kept: the interrupt can be
    answered again."""
    scratch = current_interrupts.get()
    if scratch is None:
        raise RuntimeError("Called interrupt() outside of a node")
    return scratch.next(value, response_schema)


class PregelTask(NamedTuple):
    """A task of a checkpoint's step, as `get_state` shows it."""

    id: str
    name: str
    path: tuple[Any, ...] = ()
    error: Exception | None = None
    interrupts: tuple[Interrupt, ...] = ()
    state: Any = None
    result: Any = None


class StateSnapshot(NamedTuple):
    """A thread's state at one checkpoint: what `get_state` and `get_state_history` return."""

    values: dict[str, Any] | Any  # a one-value state: the value itself
    next: tuple[str, ...]
    config: dict[str, Any]
    metadata: dict[str, Any] | None
    created_at: str | None
    parent_config: dict[str, Any] | None
    tasks: tuple[PregelTask, ...]
    interrupts: tuple[Interrupt, ...] = ()
