"""The Functional API: `@entrypoint()` workflows whose `@task` calls are jobs on the cluster.

    @task
    async def background(name: str) -> dict: ...

    @entrypoint(checkpointer=InMemorySaver())
    async def screen(name: str) -> str:
        parsed = await parse(name)
        bg, refs = await asyncio.gather(background(name), references(name))  # in parallel
        return f"{bg['status']} / {refs['status']}"

An entrypoint is a one-node graph (its node runs the function on a worker), so it is invoked,
streamed, interrupted and resumed like any compiled graph and served by the same processes. Each
`@task` call inside it becomes a job of its own, possibly on another worker; its result is saved
with the run's checkpoint, so an entrypoint resumed after an interrupt (or re-run after a crash)
gets the results of the calls it made before instead of running them again. Calls are matched by
their order, so an entrypoint must make the same calls in the same order each time it runs.
Outside an entrypoint running on a worker, a task call simply runs the function.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
from collections.abc import Callable, Generator, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Protocol, TypedDict

from shared.graph.compiled import CompiledStateGraph
from shared.graph.state import StateGraph
from shared.pregel import END, START
from shared.types import RetryPolicy, StateSnapshot


class CallScheduler(Protocol):
    """What runs a task call as a job (the worker provides it while an entrypoint runs)."""

    def schedule(self, task: TaskFunction, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> concurrent.futures.Future[Any]: ...


current_scheduler: ContextVar[CallScheduler | None] = ContextVar("arqgraph_calls", default=None)

current_attempt: ContextVar[int] = ContextVar("arqgraph_attempt", default=1)
"""Which attempt of a task call is running (1 for the first), set by the worker."""


class RetryLater(Exception):  # noqa: N818 - an instruction, not an error
    """Raised by a task to be tried again after `delay` seconds: a new attempt of its job, which
    holds no worker slot while it waits."""

    def __init__(self, delay: float, cause: BaseException | None = None) -> None:
        super().__init__(f"try again in {delay}s" + (f" after {cause!r}" if cause else ""))
        self.delay = delay


TASKS: dict[str, TaskFunction] = {}
"""Every `@task` of the loaded modules by name: a worker runs a call job by looking it up here."""


class TaskFuture:
    """The pending result of a task call: `await` it (async code) or call `.result()` (sync)."""

    def __init__(self, future: concurrent.futures.Future[Any] | None = None,
                 coroutine: Any = None) -> None:
        self._future = future
        self._coroutine = coroutine

    def __await__(self) -> Generator[Any, None, Any]:
        if self._coroutine is not None:
            return self._coroutine.__await__()  # type: ignore[no-any-return]
        assert self._future is not None
        return asyncio.wrap_future(self._future).__await__()

    def result(self, timeout: float | None = None) -> Any:
        if self._coroutine is not None:
            raise RuntimeError("an async task called outside an entrypoint must be awaited")
        assert self._future is not None
        return self._future.result(timeout)


class TaskFunction:
    """A function decorated with `@task`."""

    def __init__(self, fn: Callable[..., Any], name: str | None,
                 retry_policy: RetryPolicy | Sequence[RetryPolicy] | None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.retry_policy = retry_policy
        self.key = f"{fn.__module__}:{fn.__qualname__}"
        TASKS[self.key] = self
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __call__(self, *args: Any, **kwargs: Any) -> TaskFuture:
        scheduler = current_scheduler.get()
        if scheduler is not None:
            return TaskFuture(scheduler.schedule(self, args, kwargs))
        if inspect.iscoroutinefunction(self.fn):
            return TaskFuture(coroutine=self.fn(*args, **kwargs))
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            done.set_result(self.fn(*args, **kwargs))
        except Exception as exc:
            done.set_exception(exc)
        return TaskFuture(done)


def task(
    fn: Callable[..., Any] | None = None, *, name: str | None = None,
    retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None, **_: Any,
) -> Any:
    """`@task` or `@task(name=..., retry_policy=...)`: each call becomes a job."""
    if fn is not None:
        return TaskFunction(fn, name, retry_policy)
    return lambda f: TaskFunction(f, name, retry_policy)


class EntryState(TypedDict, total=False):
    input: Any
    output: Any


class Entrypoint(CompiledStateGraph):
    """A compiled graph of one node running the entrypoint function; invoking it gives the
    function's return value (or `{"__interrupt__": [...]}` while it waits for a human). The
    producer `Client` wraps the input and unwraps the value for every process alike."""

    returns_value = True

    def __init__(self, fn: Callable[..., Any], *, checkpointer: Any = None,
                 name: str | None = None) -> None:
        self.fn = fn
        node_name = name or fn.__name__
        builder = StateGraph(EntryState)
        builder.add_node(node_name, _node_for(fn))
        builder.add_edge(START, node_name)
        builder.add_edge(node_name, END)
        builder.compiled = True
        super().__init__(builder, name=node_name, explicit_name=True, checkpointer=checkpointer)

    @staticmethod
    def _snapshot(snapshot: StateSnapshot) -> StateSnapshot:
        """As LangGraph shows an entrypoint's state: its return value (None before it has one)."""
        values = snapshot.values.get("output") if isinstance(snapshot.values, dict) else None
        return snapshot._replace(values=values)  # type: ignore[arg-type]

    async def aget_state(self, config: dict[str, Any], **kwargs: Any) -> StateSnapshot:
        return self._snapshot(await super().aget_state(config, **kwargs))  # get_state too

    def get_state_history(self, config: dict[str, Any], **kwargs: Any) -> Iterator[StateSnapshot]:
        for snapshot in super().get_state_history(config, **kwargs):
            yield self._snapshot(snapshot)


def _node_for(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The entrypoint's node: calls `fn` with the run's input and writes its return value."""
    if inspect.iscoroutinefunction(fn):
        async def node(state: EntryState) -> dict[str, Any]:
            return {"output": await fn(state.get("input"))}
    else:
        def node(state: EntryState) -> dict[str, Any]:  # type: ignore[misc]
            return {"output": fn(state.get("input"))}
    node.__module__, node.__qualname__ = fn.__module__, fn.__qualname__  # for the fingerprint
    return node


def entrypoint(fn: Any = None, *, checkpointer: Any = None, name: str | None = None,
               **_: Any) -> Any:
    """`@entrypoint()`, `@entrypoint(checkpointer=...)` or bare `@entrypoint`."""
    if fn is not None and (inspect.isfunction(fn) or inspect.ismethod(fn)):
        return Entrypoint(fn, checkpointer=checkpointer, name=name)
    saver = fn if fn is not None else checkpointer  # LangGraph's first argument: the checkpointer
    return lambda f: Entrypoint(f, checkpointer=saver, name=name)
