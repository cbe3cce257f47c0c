"""Graph lifecycle callbacks, as LangGraph's `langgraph.callbacks`: handlers given in a run's
config (`{"callbacks": [handler]}`) that subclass `GraphCallbackHandler` hear `on_resume` when
a run goes on from the thread's checkpoint (input None or a Command), and `on_interrupt` when it
stops to wait for a human. A handler that raises is logged and the run goes on, unless the
handler sets `raise_error`. Only the root graph's lifecycle is told (a subgraph runs on workers,
where the caller's handlers are not).

`arqgraph.run_report` does the reporting; this module needs langchain-core, as LangGraph's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.callbacks.manager import ahandle_event, handle_event

from arqgraph.types import Interrupt

__all__ = (
    "GraphCallbackHandler",
    "GraphInterruptEvent",
    "GraphLifecycleEvent",
    "GraphLifecycleStatus",
    "GraphResumeEvent",
    "get_async_graph_callback_manager_for_config",
    "get_sync_graph_callback_manager_for_config",
)

GraphLifecycleStatus: TypeAlias = Literal[
    "input", "pending", "done", "interrupt_before", "interrupt_after", "out_of_steps",
]
"""Where the run was when a lifecycle event was taken."""


@dataclass(frozen=True)
class _GraphEvent:
    """Which run, where it was, and at which checkpoint of which (sub)graph."""

    run_id: UUID | None
    status: GraphLifecycleStatus
    checkpoint_id: str
    checkpoint_ns: tuple[str, ...]


@dataclass(frozen=True)
class GraphInterruptEvent(_GraphEvent):
    """The run stopped to wait for a human: at `interrupts` raised by nodes, or a breakpoint."""

    interrupts: tuple[Interrupt, ...]


@dataclass(frozen=True)
class GraphResumeEvent(_GraphEvent):
    """The run goes on from the thread's checkpoint `checkpoint_id`."""


GraphLifecycleEvent: TypeAlias = GraphInterruptEvent | GraphResumeEvent


class GraphCallbackHandler(BaseCallbackHandler):
    """Subclass to hear a graph's lifecycle; other handlers never get these events."""

    def on_interrupt(self, event: GraphInterruptEvent) -> Any:
        """The run stopped to wait for a human."""

    def on_resume(self, event: GraphResumeEvent) -> Any:
        """The run goes on from a saved checkpoint."""


def _graph_handlers(handlers: Sequence[BaseCallbackHandler]) -> list[BaseCallbackHandler]:
    return [h for h in handlers if isinstance(h, GraphCallbackHandler)]


class _GraphManagerBase(BaseCallbackManager):
    """The graph handlers of a config, and the run id their events name."""

    def __init__(
        self,
        handlers: Sequence[BaseCallbackHandler] | None = None,
        inheritable_handlers: Sequence[BaseCallbackHandler] | None = None,
        parent_run_id: UUID | None = None,
        *,
        tags: list[str] | None = None,
        inheritable_tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inheritable_metadata: dict[str, Any] | None = None,
        run_id: UUID | None = None,
    ) -> None:
        super().__init__(
            list(handlers or []), list(inheritable_handlers or []), parent_run_id, tags=tags,
            inheritable_tags=inheritable_tags, metadata=metadata,
            inheritable_metadata=inheritable_metadata,
        )
        self.run_id = run_id

    def copy(self, *, run_id: Any = ...) -> Any:
        """A copy (keeping only graph handlers), naming `run_id` if given."""
        if run_id is not ... and run_id is not None and not isinstance(run_id, UUID):
            raise TypeError("run_id must be a UUID or None")
        return self._of(self, self.run_id if run_id is ... else run_id)

    @classmethod
    def _of(cls, manager: BaseCallbackManager, run_id: UUID | None) -> Any:
        return cls(
            _graph_handlers(manager.handlers), _graph_handlers(manager.inheritable_handlers),
            manager.parent_run_id, tags=list(manager.tags),
            inheritable_tags=list(manager.inheritable_tags), metadata=dict(manager.metadata),
            inheritable_metadata=dict(manager.inheritable_metadata), run_id=run_id,
        )

    @classmethod
    def configure(cls, callbacks: object | None = None, *, run_id: UUID | None = None) -> Any:
        """The graph handlers among `callbacks` (a handler, a list of them or a manager)."""
        if callbacks is None:
            return cls(run_id=run_id)
        if isinstance(callbacks, BaseCallbackManager):
            return cls._of(callbacks, run_id)
        if isinstance(callbacks, BaseCallbackHandler):
            return cls(_graph_handlers([callbacks]), run_id=run_id)
        if isinstance(callbacks, str | bytes) or not isinstance(callbacks, Sequence):
            raise TypeError("callbacks must be a handler, sequence, or manager")
        return cls(_graph_handlers(list(callbacks)), run_id=run_id)


class _GraphCallbackManager(_GraphManagerBase):
    """Tells the graph handlers from sync code."""

    def on_interrupt(self, event: GraphInterruptEvent) -> None:
        handle_event(self.handlers, "on_interrupt", None, event)

    def on_resume(self, event: GraphResumeEvent) -> None:
        handle_event(self.handlers, "on_resume", None, event)


class _AsyncGraphCallbackManager(_GraphManagerBase):
    """Tells the graph handlers from async code (sync handlers run in an executor)."""

    @property
    def is_async(self) -> bool:
        return True

    async def on_interrupt(self, event: GraphInterruptEvent) -> None:
        await ahandle_event(self.handlers, "on_interrupt", None, event)

    async def on_resume(self, event: GraphResumeEvent) -> None:
        await ahandle_event(self.handlers, "on_resume", None, event)


def get_sync_graph_callback_manager_for_config(
    config: dict[str, Any], *, run_id: UUID | None = None
) -> _GraphCallbackManager:
    """The graph handlers of `config["callbacks"]`, for sync code."""
    manager: _GraphCallbackManager = _GraphCallbackManager.configure(
        config.get("callbacks"), run_id=run_id)
    return manager


def get_async_graph_callback_manager_for_config(
    config: dict[str, Any], *, run_id: UUID | None = None
) -> _AsyncGraphCallbackManager:
    """The graph handlers of `config["callbacks"]`, for async code."""
    manager: _AsyncGraphCallbackManager = _AsyncGraphCallbackManager.configure(
        config.get("callbacks"), run_id=run_id)
    return manager
