"""How functions are called: whether a node's function is async, and the `@task` calls of the
Functional API (`arqgraph.func`), each a job of its own on a worker.

A task call asks the scheduler the worker set for the running entrypoint (`current_scheduler`)
to run it as a job; outside an entrypoint running on a worker it simply runs the function. This
lives below the public API so that the workers find a call's function (`TASKS`) without importing
the graph-building modules.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import inspect
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from arqgraph.types import CachePolicy, RetryPolicy, TimeoutPolicy

CACHE_NS_WRITES = "__pregel_ns_writes"

P = ParamSpec("P")
T = TypeVar("T")


def qualname(obj: Any) -> str:
    """Where a function (or a callable object's class) is defined: `module.qualname`."""
    target = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else type(obj)
    if callable(obj) and not inspect.isclass(obj) and not hasattr(obj, "__qualname__"):
        target = type(obj)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def cache_namespace(node: str | None, fn: Callable[..., Any]) -> tuple[str, ...]:
    """Where a node's cached results live: LangGraph's namespace of a node's writes (of a
    task's calls without `node`)."""
    return (CACHE_NS_WRITES, qualname(fn)) if node is None else (CACHE_NS_WRITES, qualname(fn), node)


def cache_digest(raw: str | bytes) -> str:
    """The key of a cache entry, from what a cache policy's `key_func` made of the input."""
    return hashlib.sha256(raw if isinstance(raw, bytes) else str(raw).encode()).hexdigest()


def is_runnable(fn: Any) -> bool:
    """Whether `fn` is a LangChain Runnable (a chain, a RunnableLambda, a chat model): a node
    LangGraph calls with `invoke(input, config)`. False when LangChain is not loaded."""
    module = sys.modules.get("langchain_core.runnables.base")
    runnable = getattr(module, "Runnable", None)
    return runnable is not None and isinstance(fn, runnable)


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling `fn` gives a coroutine (async functions, objects with async __call__)."""
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def check_timeout_async(name: str, fn: Callable[..., Any], timeout: Any,
                        kind: str = "Node") -> None:
    """As LangGraph: a timeout needs an async function (sync code cannot be cancelled)."""
    if timeout is not None and not is_async(fn):
        raise ValueError(
            "Node timeouts are only supported for async nodes because sync Python "
            f"execution cannot be safely cancelled in-process. {kind} '{name}' is sync."
        )


class CallScheduler(Protocol):
    """What runs a task call as a job (the worker provides it while an entrypoint runs)."""

    def schedule(self, task: TaskFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> concurrent.futures.Future[Any]: ...

    def run_subgraph(self, graph: Any, input: Any, config: dict[str, Any], resume: list[Any]
                     ) -> concurrent.futures.Future[Any]: ...

    def stream_subgraph(self, graph: Any, input: Any, config: dict[str, Any],
                        resume: list[Any], modes: Sequence[str], subgraphs: bool,
                        box: dict[str, Any]) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]: ...


current_scheduler: ContextVar[CallScheduler | None] = ContextVar("arqgraph_calls", default=None)

current_attempt: ContextVar[int] = ContextVar("arqgraph_attempt", default=1)
"""Which attempt of a task call is running (1 for the first), set by the worker."""


class RetryLater(Exception):  # noqa: N818 - an instruction, not an error
    """Raised by a task to be tried again after `delay` seconds: a new attempt of its job, which
    holds no worker slot while it waits."""

    def __init__(self, delay: float, cause: BaseException | None = None) -> None:
        super().__init__(f"try again in {delay}s" + (f" after {cause!r}" if cause else ""))
        self.delay = delay


TASKS: dict[str, TaskFunction[..., Any]] = {}
"""Every `@task` of the loaded modules by name: a worker runs a call job by looking it up here."""


class TaskFuture(Generic[T]):
    """The pending result of a task call: `await` it (async code) or call `.result()` (sync);
    generic in the function's result, as LangGraph's future, for typed programs."""

    def __init__(self, future: concurrent.futures.Future[Any] | None = None,
                 coroutine: Any = None) -> None:
        self._future = future
        self._coroutine = coroutine

    def __await__(self) -> Generator[Any, None, T]:
        if self._coroutine is not None:
            return self._coroutine.__await__()  # type: ignore[no-any-return]
        assert self._future is not None
        return asyncio.wrap_future(self._future).__await__()

    def result(self, timeout: float | None = None) -> T:
        if self._coroutine is not None:
            raise RuntimeError("an async task called outside an entrypoint must be awaited")
        assert self._future is not None
        if not self._future.done() and _on_an_event_loop():  # (blocking would hang the loop)
            raise asyncio.InvalidStateError(
                "Result is not set. (In async code, await a task's future instead.)")
        return self._future.result(timeout)

    def cancel(self) -> bool:
        """Cancel the call, as LangGraph's futures do: a call not done yet is stopped wherever
        it runs (a node cancelled sees CancelledError), its result is not saved, and awaiting
        it raises CancelledError. An entrypoint run again calls it afresh."""
        if self._coroutine is not None:
            if inspect.getcoroutinestate(self._coroutine) != inspect.CORO_CREATED:
                return False  # (an inline call once started runs to its end)
            self._coroutine.close()
            self._coroutine = _cancelled()
            return True
        assert self._future is not None
        return self._future.cancel()

    def cancelled(self) -> bool:
        return self._future is not None and self._future.cancelled()

    def done(self) -> bool:
        return self._future is not None and self._future.done()


def _on_an_event_loop() -> bool:
    """Whether this thread runs an event loop: async code, where a call's result comes from
    that very loop (as LangGraph, `.result()` of a pending call raises there)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class TaskFunction(Generic[P, T]):
    """A function decorated with `@task`: generic in its parameters and its result (awaited,
    for an async function), as LangGraph's, so that calls to it are type-checked."""

    def __init__(self, fn: Callable[P, Awaitable[T]] | Callable[P, T], name: str | None,
                 retry_policy: RetryPolicy | Sequence[RetryPolicy] | None,
                 timeout: float | timedelta | TimeoutPolicy | None = None,
                 cache_policy: CachePolicy[Any] | None = None) -> None:
        self.fn: Callable[..., Any] = fn
        self.cache_policy = cache_policy
        target: Any = fn.func if isinstance(fn, functools.partial) else fn  # (named by its own)
        self.name: str = name or str(getattr(target, "__name__", type(target).__name__))
        self.retry_policy = retry_policy
        self.timeout = TimeoutPolicy.coerce(timeout)
        check_timeout_async(self.name, fn, self.timeout, kind="Task")
        # how a worker finds it: where the function is defined, and its name when one is given
        # (two tasks of one function, a bound method's say, are two tasks)
        where = target if hasattr(target, "__qualname__") else type(target)
        self.key = f"{where.__module__}:{where.__qualname__}" + (f"#{name}" if name else "")
        TASKS[self.key] = self
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def cache_key(self, args: Sequence[Any], kwargs: dict[str, Any]
                  ) -> tuple[tuple[str, ...], str] | None:
        """Where a call's result is cached, as LangGraph keys it; None without a policy."""
        if self.cache_policy is None:
            return None
        return cache_namespace(None, self.fn), cache_digest(
            self.cache_policy.key_func(*args, **kwargs))

    def clear_cache(self, cache: Any) -> None:
        """Forget this task's cached results in `cache` (the one its entrypoint was given)."""
        if self.cache_policy is not None:
            cache.clear([cache_namespace(None, self.fn)])

    async def aclear_cache(self, cache: Any) -> None:
        if self.cache_policy is not None:
            await cache.aclear([cache_namespace(None, self.fn)])

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[T]:
        scheduler = current_scheduler.get()
        if scheduler is not None:
            return TaskFuture(scheduler.schedule(self, args, kwargs))
        if inspect.iscoroutinefunction(self.fn):  # (outside an entrypoint: just run it)
            return TaskFuture(coroutine=self.fn(*args, **kwargs))
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            done.set_result(self.fn(*args, **kwargs))
        except Exception as exc:
            done.set_exception(exc)
        return TaskFuture(done)


async def _cancelled() -> Any:
    raise asyncio.CancelledError


@overload
def task(
    fn: None = None, *, name: str | None = None,
    retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
    timeout: float | timedelta | TimeoutPolicy | None = None,
    cache_policy: CachePolicy[Any] | None = None, **_: Any,
) -> Callable[[Callable[P, Awaitable[T]] | Callable[P, T]], TaskFunction[P, T]]: ...


@overload
def task(fn: Callable[P, Awaitable[T]]) -> TaskFunction[P, T]: ...


@overload
def task(fn: Callable[P, T]) -> TaskFunction[P, T]: ...


def task(
    fn: Callable[..., Any] | None = None, *, name: str | None = None,
    retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
    timeout: float | timedelta | TimeoutPolicy | None = None,
    cache_policy: CachePolicy[Any] | None = None, **_: Any,
) -> Any:
    """`@task` or `@task(name=..., retry_policy=..., timeout=..., cache_policy=...)`: each
    call becomes a job, cancelled with a NodeTimeoutError when it overruns `timeout` (an async
    task only); with a `cache_policy`, a call finds the result of an earlier one with the same
    key in its entrypoint's cache instead of running. Typed as LangGraph's (overloads): a call
    takes the function's arguments and gives a future of its result."""
    if fn is not None:
        return TaskFunction(fn, name, retry_policy, timeout, cache_policy)
    return lambda f: TaskFunction(f, name, retry_policy, timeout, cache_policy)
