"""How long a node's or a task's attempt may run: its timeout policy's run timeout (in all)
and idle timeout (without progress: a heartbeat, or under `refresh_on="auto"` a write to its
stream), or the worker's default bound. An attempt that overruns is cancelled and fails with
NodeTimeoutError."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import sys
import time
from collections.abc import Awaitable
from typing import Any, Literal, cast

from arqgraph.errors import NodeTimeoutError
from arqgraph.types import TimeoutPolicy


class Progress:
    """The idle timer of the attempt running in this context: a heartbeat pushes its deadline
    back; so do the node's stream writes when its policy refreshes on them ("auto")."""

    def __init__(self, timer: asyncio.Timeout, idle: float, refresh_on: str) -> None:
        self.timer, self.idle, self.refresh_on = timer, idle, refresh_on
        self.loop = asyncio.get_running_loop()

    def beat(self, written: bool = False) -> None:
        if written and self.refresh_on != "auto":
            return
        def later() -> None:
            if not self.timer.expired():
                with contextlib.suppress(RuntimeError):  # the attempt ended since the beat
                    self.timer.reschedule(self.loop.time() + self.idle)
        self.loop.call_soon_threadsafe(later)  # (sync code beats from its worker thread)


current_progress: contextvars.ContextVar[Progress | None] = contextvars.ContextVar(
    "arqgraph_progress", default=None)


def heartbeat() -> None:
    """`runtime.heartbeat()`: the running node makes progress (refreshes its idle timeout)."""
    progress = current_progress.get()
    if progress is not None:
        progress.beat()


def with_progress_callbacks(config: dict[str, Any]) -> dict[str, Any]:
    """The node's config with a LangChain handler that counts any callback event under it
    (a model's token, a tool's start) as progress, as LangGraph's idle timeout does under
    `refresh_on="auto"`. Unchanged when LangChain is not loaded: nothing makes such events."""
    handler = _progress_handler()
    if handler is None:
        return config
    callbacks = config.get("callbacks")
    if callbacks is None or isinstance(callbacks, list):
        return {**config, "callbacks": [*(callbacks or []), handler]}
    manager = callbacks.copy()  # (a callback manager: the node's run)
    manager.add_handler(handler, inherit=True)
    return {**config, "callbacks": manager}


@functools.cache
def _progress_handler() -> Any:
    base = sys.modules.get("langchain_core.callbacks.base")
    if base is None:
        return None

    def touch(self: Any, *args: Any, **kwargs: Any) -> None:
        progress_written()

    events = ("llm_start", "chat_model_start", "llm_new_token", "llm_end", "llm_error",
              "chain_start", "chain_end", "chain_error", "tool_start", "tool_end", "tool_error",
              "retriever_start", "retriever_end", "retriever_error", "agent_action",
              "agent_finish", "text", "retry", "custom_event")
    methods: dict[str, Any] = {f"on_{event}": touch for event in events}
    handler = type("ProgressHandler", (base.BaseCallbackHandler,), {"run_inline": True, **methods})
    return handler()


def progress_written() -> None:
    """The running node wrote to its stream: progress, under `refresh_on="auto"`."""
    progress = current_progress.get()
    if progress is not None:
        progress.beat(written=True)


async def timed(call: Awaitable[Any], name: str, policy: TimeoutPolicy | None,
                default_timeout: float | None = None) -> Any:
    """Await `call` (a node's or a task's), cancelled with a NodeTimeoutError when it overruns
    `policy`, or without one the worker's `default_timeout`."""
    if policy is not None:
        run = cast(float | None, policy.run_timeout)
        idle = cast(float | None, policy.idle_timeout)
    else:  # the worker's bound (a number: no policy is made per task for it)
        run, idle = default_timeout or None, None
    if run is None and idle is None:
        return await call
    started = time.monotonic()
    idle_timer: asyncio.Timeout | None = None
    try:
        async with asyncio.timeout(run):  # (wait_for would run the node in a task of its own)
            if idle is None:
                return await call
            assert policy is not None
            async with asyncio.timeout(idle) as idle_timer:
                token = current_progress.set(Progress(idle_timer, idle, policy.refresh_on))
                try:
                    return await call
                finally:
                    current_progress.reset(token)
    except TimeoutError:
        kind: Literal["idle", "run"] = "idle" if idle_timer and idle_timer.expired() else "run"
        raise NodeTimeoutError(name, time.monotonic() - started, kind=kind,
                               idle_timeout=idle, run_timeout=run) from None
