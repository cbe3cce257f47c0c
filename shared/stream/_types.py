"""The two shapes the v3 event stream is built from: the protocol event every raw stream
part becomes, and the transformer that turns those events into projections
(`run.values`, `run.messages`, your own)."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, ClassVar, Literal, NotRequired

from typing_extensions import TypedDict

log = logging.getLogger(__name__)


class _ProtocolEventParams(TypedDict):
    """Where an event comes from (`namespace`), when (wall-clock milliseconds: use the event's
    `seq` to order), and what it carries."""

    namespace: list[str]
    timestamp: int
    data: Any
    interrupts: NotRequired[tuple[Any, ...]]


class ProtocolEvent(TypedDict):
    """One event of a run: a stream part ("values", "messages", "tasks"...) in a uniform
    envelope, with the root mux's running number `seq`."""

    type: Literal["event"]
    event_id: NotRequired[str]
    seq: NotRequired[int]
    method: str
    params: _ProtocolEventParams


class StreamTransformer(ABC):
    """Watches a run's events and builds projections from them.

    `init` returns the projections (their keys become `run.extensions`, and attributes of the
    run when the class sets `_native = True`); `process` sees every event and returns whether
    it stays in the run's main event log. Each subgraph scope gets its own instance, built as
    `factory(scope)`. Async work goes in `aprocess`/`afinalize`/`afail` or `schedule`, which
    only an async run (`astream_events`) can host.
    """

    requires_async: ClassVar[bool] = False
    supports_sync: ClassVar[bool] = False
    required_stream_modes: ClassVar[tuple[str, ...]] = ()
    before_builtins: ClassVar[bool] = False

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        self.scope: tuple[str, ...] = scope

    @abstractmethod
    def init(self) -> dict[str, Any]:
        """The projections, by name."""

    def _on_register(self, mux: Any) -> None:  # noqa: B027 (optional hook)
        """Called once the mux holds this transformer (to reach it later)."""

    def process(self, event: ProtocolEvent) -> bool:
        raise NotImplementedError(
            f"{type(self).__name__} must override process() or aprocess()")

    async def aprocess(self, event: ProtocolEvent) -> bool:
        return self.process(event)

    def finalize(self) -> None:  # noqa: B027 (optional hook)
        """The run ended normally."""

    async def afinalize(self) -> None:
        self.finalize()

    def fail(self, err: BaseException) -> None:  # noqa: B027 (optional hook)
        """The run ended with `err`."""

    async def afail(self, err: BaseException) -> None:
        self.fail(err)

    def schedule(self, coro: Coroutine[Any, Any, Any], *,
                 on_error: Literal["log", "raise"] = "log") -> asyncio.Task[Any]:
        """Run `coro` alongside the run: the mux waits for it before finalizing and cancels
        it when the run fails. With `on_error="log"`, its exception is only logged."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            raise RuntimeError(
                f"{type(self).__name__}.schedule() requires a running event loop; this "
                "transformer must run under astream_events(), not stream_events(). Set "
                "requires_async=True on the class so this fails at registration.") from None
        task = asyncio.create_task(_logged(coro) if on_error == "log" else coro)
        pending = self.__dict__.setdefault("_stream_scheduled_tasks", set())
        pending.add(task)
        task.add_done_callback(pending.discard)
        return task


async def _logged(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return await coro
    except asyncio.CancelledError:
        raise
    except BaseException:
        log.exception("Scheduled StreamTransformer task failed")


def transformer_requires_async(transformer: StreamTransformer) -> bool:
    """Whether `transformer` needs an event loop: it says so, or overrides an async hook
    without saying it also works synchronously."""
    if transformer.requires_async:
        return True
    if transformer.supports_sync:
        return False
    cls = type(transformer)
    return any(getattr(cls, name) is not getattr(StreamTransformer, name)
               for name in ("aprocess", "afinalize", "afail"))
