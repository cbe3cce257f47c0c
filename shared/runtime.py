"""The `runtime` a node may ask for: its run's context, stream writer, store, the previous
return value of an entrypoint, a heartbeat, where it runs (`execution_info`), the platform's
`server_info`, and the run's `control`."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from arqgraph.types import StreamWriter

ContextT = TypeVar("ContextT")


def _drop(_: Any) -> None:
    return None


def _beat() -> None:
    return None


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    """Where the running node executes: its checkpoint, namespace and task, its thread (None
    without persistence) and run, and which attempt this is."""

    checkpoint_id: str
    checkpoint_ns: str
    task_id: str
    thread_id: str | None = None
    run_id: str | None = None
    node_attempt: int = 1
    node_first_attempt_time: float | None = None

    def patch(self, **overrides: Any) -> ExecutionInfo:
        return replace(self, **overrides)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a LangGraph Platform server says of the run (from `assistant_id` and `graph_id` in
    the config's `configurable`); None outside one."""

    assistant_id: str
    graph_id: str
    user: Any = None


class RunControl:
    """A run's control surface: `request_drain()` asks the run to stop once the step that is
    running has finished (its checkpoint saved), raising `GraphDrained` to its caller."""

    __slots__ = ("_drain_reason", "_listeners")

    def __init__(self) -> None:
        self._drain_reason: str | None = None
        self._listeners: list[Callable[[str], None]] = []

    def request_drain(self, reason: str = "shutdown") -> None:
        if self._drain_reason is None:
            self._drain_reason = reason
            for listener in list(self._listeners):
                listener(reason)

    def on_drain(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(reason)` when a drain is requested (at once if it was); returns
        what stops listening. The runner of the run listens: it tells the run's
        orchestrator."""
        if self._drain_reason is not None:
            listener(self._drain_reason)
            return lambda: None
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def drain_requested(self) -> bool:
        return self._drain_reason is not None

    @property
    def drain_reason(self) -> str | None:
        return self._drain_reason


@dataclass(frozen=True)
class Runtime(Generic[ContextT]):
    """What LangGraph injects as `runtime`."""

    context: ContextT = None  # type: ignore[assignment]
    store: Any = None
    stream_writer: StreamWriter = field(default=_drop)
    heartbeat: Callable[[], None] = field(default=_beat)
    """Tell the runtime the node is making progress (it refreshes an idle timeout)."""
    previous: Any = None
    execution_info: ExecutionInfo | None = None
    server_info: ServerInfo | None = None
    control: RunControl | None = None

    def merge(self, other: Runtime[ContextT]) -> Runtime[ContextT]:
        """This runtime with what `other` sets in place of its own."""
        return Runtime(
            context=other.context or self.context,
            store=other.store or self.store,
            stream_writer=other.stream_writer if other.stream_writer is not _drop
            else self.stream_writer,
            heartbeat=other.heartbeat if other.heartbeat is not _beat else self.heartbeat,
            previous=self.previous if other.previous is None else other.previous,
            execution_info=other.execution_info or self.execution_info,
            server_info=other.server_info or self.server_info,
            control=other.control or self.control,
        )

    def override(self, **overrides: Any) -> Runtime[ContextT]:
        return replace(self, **overrides)

    def patch_execution_info(self, **overrides: Any) -> Runtime[ContextT]:
        if self.execution_info is None:
            raise RuntimeError("Cannot patch execution_info before it has been set")
        return replace(self, execution_info=self.execution_info.patch(**overrides))

    @property
    def drain_requested(self) -> bool:
        return self.control.drain_requested if self.control is not None else False

    @property
    def drain_reason(self) -> str | None:
        return self.control.drain_reason if self.control is not None else None


DEFAULT_RUNTIME: Runtime[Any] = Runtime()

current_runtime: ContextVar[Runtime[Any] | None] = ContextVar("arqgraph_runtime", default=None)


def get_runtime(context_schema: type[ContextT] | None = None) -> Runtime[ContextT]:
    """The runtime of the node running now (`context_schema` only types the result); raises
    outside a node, as LangGraph does."""
    runtime = current_runtime.get()
    if runtime is None:
        raise RuntimeError("Called get_runtime outside of a runnable context")
    return runtime


def server_info(configurable: dict[str, Any]) -> ServerInfo | None:
    """The platform's server info a run's `configurable` carries, if any."""
    assistant, graph = configurable.get("assistant_id"), configurable.get("graph_id")
    if assistant is None or graph is None:
        return None
    return ServerInfo(str(assistant), str(graph), configurable.get("langgraph_auth_user"))
