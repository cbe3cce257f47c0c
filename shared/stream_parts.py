"""The typed shapes of what `stream` and `invoke` give with `version="v2"`, and the payloads of
the "tasks", "checkpoints" and "debug" stream modes, as LangGraph 1.2 names them (re-exported
by `arqgraph.types`).

A v2 stream yields one dict per event: its mode (`type`), its namespace (`ns`, () for the run's
own) and its `data`; a "values" part also carries the run's `interrupts`, taken out of the
values. `invoke(version="v2")` returns a `GraphOutput`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

from arqgraph.typing import StateT

T = TypeVar("T")


class TaskPayload(TypedDict):
    """A task's start ("tasks" mode): its node, the input it runs on, what triggered it."""

    id: str
    name: str
    input: Any
    triggers: list[str]
    metadata: NotRequired[dict[str, Any]]


class TaskResultPayload(TypedDict):
    """A task's end ("tasks" mode): its writes, or its error, or the interrupts it asked."""

    id: str
    name: str
    error: str | None
    interrupts: list[dict[str, Any]]
    result: dict[str, Any]


class CheckpointTask(TypedDict):
    """A task of a checkpoint, as its "checkpoints" event lists it."""

    id: str
    name: str
    error: NotRequired[str]
    result: NotRequired[Any]
    interrupts: NotRequired[list[dict[str, Any]]]
    state: Any


class CheckpointPayload(TypedDict, Generic[StateT]):
    """A checkpoint saved ("checkpoints" mode): what `get_state` would show of it."""

    config: dict[str, Any] | None
    metadata: dict[str, Any]
    values: StateT
    next: list[str]
    parent_config: dict[str, Any] | None
    tasks: list[CheckpointTask]


class DebugPayload(TypedDict, Generic[StateT]):
    """A "debug" event: a checkpoint, a task's start or a task's result, with its step."""

    step: int
    timestamp: str
    type: Literal["checkpoint", "task", "task_result"]
    payload: Any


class ValuesStreamPart(TypedDict, Generic[T]):
    type: Literal["values"]
    ns: tuple[str, ...]
    data: T
    interrupts: tuple[Any, ...]


class UpdatesStreamPart(TypedDict):
    type: Literal["updates"]
    ns: tuple[str, ...]
    data: dict[str, Any]


class MessagesStreamPart(TypedDict):
    type: Literal["messages"]
    ns: tuple[str, ...]
    data: tuple[Any, dict[str, Any]]


class CustomStreamPart(TypedDict):
    type: Literal["custom"]
    ns: tuple[str, ...]
    data: Any


class CheckpointStreamPart(TypedDict, Generic[StateT]):
    type: Literal["checkpoints"]
    ns: tuple[str, ...]
    data: CheckpointPayload[StateT]


class TasksStreamPart(TypedDict):
    type: Literal["tasks"]
    ns: tuple[str, ...]
    data: TaskPayload | TaskResultPayload


class DebugStreamPart(TypedDict, Generic[StateT]):
    type: Literal["debug"]
    ns: tuple[str, ...]
    data: DebugPayload[StateT]


StreamPart = (ValuesStreamPart[Any] | UpdatesStreamPart | MessagesStreamPart | CustomStreamPart
              | CheckpointStreamPart[Any] | TasksStreamPart | DebugStreamPart[Any])
"""Any v2 stream part: tell them apart by `part["type"]`."""


@dataclass(frozen=True)
class GraphOutput(Generic[T]):
    """What `invoke(version="v2")` returns: the output value, and the interrupts the run
    stopped at (empty when it finished)."""

    value: T
    interrupts: tuple[Any, ...] = ()

    def __getitem__(self, key: str) -> Any:
        _deprecated("result[key]")
        if key == "__interrupt__":
            return self.interrupts
        if isinstance(self.value, dict):
            return self.value[key]
        try:
            return getattr(self.value, key)
        except AttributeError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        _deprecated("key in result")
        if key == "__interrupt__":
            return bool(self.interrupts)
        if isinstance(self.value, dict):
            return key in self.value
        return isinstance(key, str) and hasattr(self.value, key)


def _deprecated(how: str) -> None:
    warnings.warn(f"Accessing GraphOutput via `{how}` is deprecated. Use `result.value` to "
                  "access the output value directly, or `result.interrupts` for interrupts.",
                  DeprecationWarning, stacklevel=3)
