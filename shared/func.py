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

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, overload

import pydantic

from arqgraph.constants import END, START
from arqgraph.core.calls import (
    TASKS,
    CallScheduler,
    RetryLater,
    TaskFunction,
    TaskFuture,
    current_attempt,
    current_scheduler,
    task,
)
from arqgraph.graph.compiled import CompiledStateGraph
from arqgraph.graph.state import StateGraph
from arqgraph.types import CachePolicy, RetryPolicy, StateSnapshot, TimeoutPolicy

if TYPE_CHECKING:
    from arqgraph.checkpoint.base import BaseCheckpointSaver

__all__ = [
    "TASKS", "CallScheduler", "Entrypoint", "RetryLater", "TaskFunction", "TaskFuture", "current_attempt",
    "current_scheduler", "entrypoint", "task",
]


R = TypeVar("R")
S = TypeVar("S")


class EntryState(TypedDict, total=False):
    input: Any
    output: Any
    previous: Any  # what the next run on the thread gets as `previous`


@dataclasses.dataclass
class Final(Generic[R, S]):
    """`return entrypoint.final(value=..., save=...)`: the entrypoint returns `value` and the
    next run on its thread gets `save` as `previous`."""

    value: R
    save: S


class Entrypoint(CompiledStateGraph[Any, Any, Any, Any]):
    """A compiled graph of one node running the entrypoint function; invoking it gives the
    function's return value (or `{"__interrupt__": [...]}` while it waits for a human). The
    producer `Client` wraps the input and unwraps the value for every process alike."""

    returns_value = True

    def __init__(self, fn: Callable[..., Any], *, checkpointer: Any = None,
                 name: str | None = None, context_schema: Any = None, store: Any = None,
                 timeout: float | timedelta | TimeoutPolicy | None = None, cache: Any = None,
                 cache_policy: CachePolicy[Any] | None = None,
                 retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None) -> None:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise NotImplementedError(
                f"entrypoint {fn.__name__!r} is a generator, which an entrypoint may not be: "
                "stream its partial results with get_stream_writer() instead")
        self.fn = fn
        node_name = name or fn.__name__
        builder = StateGraph(EntryState, context_schema)
        builder.add_node(node_name, _node_for(fn), timeout=timeout, cache_policy=cache_policy,
                         retry_policy=retry_policy)
        builder.add_edge(START, node_name)
        builder.add_edge(node_name, END)
        builder.compiled = True
        super().__init__(builder, name=node_name, explicit_name=True, checkpointer=checkpointer,
                         store=store, cache=cache)

    def get_input_jsonschema(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The schema of the function's input: its first parameter's annotation."""
        return self._value_schema(_annotation(self.fn, "input"), "Input")

    def get_output_jsonschema(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The schema of the function's return value: its return annotation (the value's, for
        `entrypoint.final[value, save]`)."""
        returned = _annotation(self.fn, "return")
        if returned is Final:
            returned = Any
        elif typing.get_origin(returned) is Final:
            returned = typing.get_args(returned)[0]
        return self._value_schema(returned, "Output")

    @staticmethod
    def _value_schema(annotation: Any, suffix: str) -> dict[str, Any]:
        base: Any = pydantic.RootModel[annotation]
        model: Any = type(f"LangGraph{suffix}", (base,), {"__module__": __name__})
        schema: dict[str, Any] = model.model_json_schema()
        return schema

    async def aupdate_state(self, config: Mapping[str, Any], values: Any,
                            as_node: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """As LangGraph: an update of an entrypoint's thread is its value, both what it
        returned and what the next run gets as `previous`."""
        return await super().aupdate_state(config, {"output": values, "previous": values},
                                           as_node, **kwargs)

    def _snapshot(self, snapshot: StateSnapshot) -> StateSnapshot:
        """As LangGraph shows an entrypoint's state: its return value (None before it has
        one), and its task's result as that value."""
        values = snapshot.values.get("output") if isinstance(snapshot.values, dict) else None
        tasks = tuple(t._replace(result=t.result["output"]) if isinstance(t.result, dict)
                      and "output" in t.result else t for t in snapshot.tasks)
        return snapshot._replace(values=values, tasks=tasks)


def _annotation(fn: Callable[..., Any], which: str) -> Any:
    """The annotation of `fn`'s first parameter (`which="input"`) or return value (Any when
    it has none)."""
    try:
        hints = typing.get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
    except (NameError, TypeError, ValueError):
        return Any
    key = params[0] if which == "input" and params else which
    return hints.get(key, Any)


def _node_for(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The entrypoint's node: calls `fn` with the run's input (and `previous`, `config`,
    `runtime`, `writer`, `store` when it asks for them) and writes its return value, and
    what the next run gets as `previous`."""
    wanted = set(inspect.signature(fn).parameters)

    def arguments(state: EntryState, config: Any, runtime: Any) -> dict[str, Any]:
        given = {"previous": state.get("previous"), "config": config, "runtime": runtime,
                 "writer": runtime.stream_writer, "store": runtime.store}
        return {k: v for k, v in given.items() if k in wanted}

    if inspect.iscoroutinefunction(fn):
        async def node(state: EntryState, config: Any, runtime: Any) -> dict[str, Any]:
            return _written(await fn(state.get("input"), **arguments(state, config, runtime)))
    else:
        def node(state: EntryState, config: Any, runtime: Any) -> dict[str, Any]:  # type: ignore[misc]
            return _written(fn(state.get("input"), **arguments(state, config, runtime)))
    node.__module__, node.__qualname__ = fn.__module__, fn.__qualname__  # for the fingerprint
    return node


def _written(result: Any) -> dict[str, Any]:
    if isinstance(result, Final):
        return {"output": result.value, "previous": result.save}
    return {"output": result, "previous": result}


class EntrypointDecorator:
    """`entrypoint`: `@entrypoint()`, `@entrypoint(checkpointer=..., store=...,
    context_schema=..., timeout=..., cache=..., cache_policy=..., retry_policy=...)` or bare
    `@entrypoint`; `entrypoint.final(value=..., save=...)`. An object, as LangGraph's class,
    with typed calls (overloads), so that a decorated function is typed under `mypy --strict`."""

    final = Final  # LangGraph's `entrypoint.final`

    @overload
    def __call__(self, fn: Callable[..., Any], *, checkpointer: Any = None,
                 name: str | None = None, context_schema: Any = None, store: Any = None,
                 timeout: float | timedelta | TimeoutPolicy | None = None, cache: Any = None,
                 cache_policy: CachePolicy[Any] | None = None,
                 retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
                 **_: Any) -> Entrypoint: ...

    @overload
    def __call__(self, fn: BaseCheckpointSaver[Any] | None = None, *, checkpointer: Any = None,
                 name: str | None = None, context_schema: Any = None, store: Any = None,
                 timeout: float | timedelta | TimeoutPolicy | None = None, cache: Any = None,
                 cache_policy: CachePolicy[Any] | None = None,
                 retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
                 **_: Any) -> Callable[[Callable[..., Any]], Entrypoint]: ...

    def __call__(self, fn: Any = None, *, checkpointer: Any = None, name: str | None = None,
                 context_schema: Any = None, store: Any = None,
                 timeout: float | timedelta | TimeoutPolicy | None = None, cache: Any = None,
                 cache_policy: CachePolicy[Any] | None = None,
                 retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
                 **_: Any) -> Any:
        """A `timeout` bounds each run of the function, as a node's (an async function only);
        `cache` holds the results of its tasks with a cache policy (on a cluster, Redis holds
        them); the first argument is the function, or LangGraph's checkpointer."""
        options: dict[str, Any] = {
            "name": name, "context_schema": context_schema, "store": store, "timeout": timeout,
            "cache": cache, "cache_policy": cache_policy, "retry_policy": retry_policy}
        if fn is not None and (inspect.isfunction(fn) or inspect.ismethod(fn)):
            return Entrypoint(fn, checkpointer=checkpointer, **options)
        saver = fn if fn is not None else checkpointer  # LangGraph's first argument
        return lambda f: Entrypoint(f, checkpointer=saver, **options)


entrypoint = EntrypointDecorator()
