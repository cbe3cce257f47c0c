"""The built-in transformers: one projection per stream mode at the run's own scope, chat
model streams (`run.messages`), and subgraphs (`run.lifecycle`, `run.subgraphs`).

Each sees only its own scope's events: a subgraph's show on that subgraph's handle, whose mux
holds transformers of its own, built at the subgraph's scope.
"""

from __future__ import annotations

from typing import Any, ClassVar

from arqgraph.stream._types import ProtocolEvent, StreamTransformer
from arqgraph.stream.lifecycle import (
    LifecyclePayload,
    LifecycleTransformer,
    SubgraphStatus,
    SubgraphTransformer,
    TasksLifecycle,
)
from arqgraph.stream.messages import MessagesTransformer
from arqgraph.stream.stream_channel import StreamChannel

__all__ = [
    "CheckpointsTransformer", "CustomTransformer", "DebugTransformer", "LifecyclePayload",
    "LifecycleTransformer", "MessagesTransformer", "SubgraphStatus", "SubgraphTransformer",
    "TasksLifecycle", "TasksTransformer", "UpdatesTransformer", "ValuesTransformer",
]

class _ScopeModeTransformer(StreamTransformer):
    """The payloads of one stream mode at the run's own scope, as a projection of that
    mode's name."""

    _native = True
    mode: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.required_stream_modes = (cls.mode,)

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._log: StreamChannel[Any] = StreamChannel()
        self._scope_list = list(scope)

    def init(self) -> dict[str, Any]:
        return {self.mode: self._log}

    def _own(self, event: ProtocolEvent) -> bool:
        return (event["method"] == self.mode
                and event["params"]["namespace"] == self._scope_list)

    def process(self, event: ProtocolEvent) -> bool:
        if self._own(event):
            self._log.push(event["params"]["data"])
        return True


class ValuesTransformer(_ScopeModeTransformer):
    """`run.values`: the state after each step, and whether the run stopped at interrupts."""

    mode = "values"

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._latest: dict[str, Any] | None = None
        self._interrupted = False
        self._interrupts: list[Any] = []

    @property
    def error(self) -> BaseException | None:
        """The error that ended the run, None if it did not fail."""
        return self._log._error

    def process(self, event: ProtocolEvent) -> bool:
        if self._own(event):
            self._latest = event["params"]["data"]
            if interrupts := event["params"].get("interrupts", ()):
                self._interrupted = True
                self._interrupts.extend(interrupts)
            self._log.push(event["params"]["data"])
        return True


class UpdatesTransformer(_ScopeModeTransformer):
    """`run.updates`: what each node wrote, by node."""

    mode = "updates"


class CustomTransformer(_ScopeModeTransformer):
    """`run.custom`: what nodes sent with their stream writer."""

    mode = "custom"


class CheckpointsTransformer(_ScopeModeTransformer):
    """`run.checkpoints`: each checkpoint saved (only with a checkpointer)."""

    mode = "checkpoints"


class DebugTransformer(_ScopeModeTransformer):
    """`run.debug`: the "debug" mode's events."""

    mode = "debug"


class TasksTransformer(_ScopeModeTransformer):
    """`run.tasks`: each task's start and result."""

    mode = "tasks"
