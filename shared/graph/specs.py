"""What the builder records of a graph's parts: a node (`NodeSpec`: its function and options) and a
conditional edge (`Branch`), with how LangGraph names a node and reads its annotations."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from arqgraph.core.calls import is_async as runs_async
from arqgraph.types import CachePolicy, Command, RetryPolicy, TimeoutPolicy, TracePolicy


@dataclass(frozen=True)
class NodeSpec:
    """A node: its function, how it wants to be called, and how to retry it."""

    name: str
    fn: Callable[..., Any]
    retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None
    timeout: TimeoutPolicy | None = None  # how long an attempt may run, or idle
    metadata: dict[str, Any] = field(default_factory=dict)
    error_handler: Callable[..., Any] | None = None
    concurrency: int | None = None  # at most this many running at once, cluster-wide
    rate_limit: str | None = None  # e.g. "10/s": calls started at most this often, cluster-wide
    rate_interval: float | None = None  # seconds between two starts, from `rate_limit`
    input_schema: type | None = None  # the keys it reads, when not the graph's state schema
    defer: bool = False  # runs once nothing else is left to run, however often triggered
    cache_policy: CachePolicy[Any] | None = None  # its results cached by a key of its input
    trace_policy: TracePolicy | None = None  # what tracers record of its input and output
    destinations: dict[str, str] | tuple[str, ...] | None = None  # (drawn) where it may go

    def ends(self) -> dict[str, str | None]:
        """Where the node may go by Command, for drawings and checks: its `destinations` (a
        dict labels the edges), else its `-> Command[Literal[...]]` annotation's."""
        if isinstance(self.destinations, dict):
            return dict(self.destinations)
        return dict.fromkeys(self.destinations or command_targets(self.fn))

    @property
    def runnable(self) -> SimpleNamespace:
        """The node's function as LangGraph's node spec holds it: `.func` when it is sync,
        `.afunc` when it is async (code that reads a builder's nodes finds it there)."""
        is_async = runs_async(self.fn)
        return SimpleNamespace(name=self.name, func=None if is_async else self.fn,
                               afunc=self.fn if is_async else None)

    def copy(self, update: dict[str, Any] | None = None) -> NodeSpec:
        """This node with the fields in `update` changed, as LangGraph's nodes copy."""
        return replace(self, **(update or {}))

    @property
    def handler_name(self) -> str:
        """The name LangGraph shows for the node's error handler in streams."""
        return f"__error_handler__{self.name}"


@dataclass(frozen=True)
class Branch:
    """A conditional edge: `path` picks targets from the state after its source node ran."""

    path: Callable[..., Any]
    path_map: dict[Hashable, str] | None = None
    input_schema: type | None = None  # the keys `path` reads, when not its source's

    def resolve(self, result: Any) -> list[Any]:
        """Map a path result (name, list of names, Send, list of Sends) to targets."""
        results = result if isinstance(result, list | tuple) else [result]
        if self.path_map is None:
            return list(results)
        return [r if not isinstance(r, Hashable) or r not in self.path_map else self.path_map[r]
                for r in results]


def node_name(action: Any) -> str:
    """The name LangGraph gives a node added without one: a runnable's (a compiled graph, a
    chain, a ToolNode) `get_name()`, else the function's name."""
    if callable(getattr(action, "get_name", None)):
        return str(action.get_name())
    return str(getattr(action, "__name__", type(action).__name__))


def inferred_input_schema(fn: Callable[..., Any]) -> type | None:
    """A node's input schema from its first parameter's annotation, when that is a class with
    annotations of its own (a TypedDict, a dataclass, a pydantic model), as LangGraph infers it."""
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        target = fn
    elif inspect.ismethod(call := getattr(fn, "__call__", None)):  # noqa: B004 - objects
        target = call
    else:
        return None
    try:
        hints = typing.get_type_hints(target)
        first = next(iter(inspect.signature(fn).parameters))
    except (NameError, TypeError, ValueError, StopIteration):
        return None
    hint = hints.get(first)
    try:
        return hint if isinstance(hint, type) and typing.get_type_hints(hint) else None
    except (NameError, TypeError):
        return None


def command_targets(fn: Callable[..., Any]) -> tuple[str, ...]:
    """Targets declared by a `-> Command[Literal["a", "b"]]` return annotation."""
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:
        return ()
    if typing.get_origin(hint) is Command:
        (literal,) = typing.get_args(hint) or (None,)
        if typing.get_origin(literal) is typing.Literal:
            return tuple(str(a) for a in typing.get_args(literal))
    return ()


_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}


def parse_rate(node: str, rate: str) -> float:
    """Seconds between two calls for a rate like "10/s", "100/m" or "2.5/h"."""
    count, _, period = str(rate).replace(" ", "").partition("/")
    try:
        calls = float(count)
        seconds = _PERIODS[period.lower()]
    except (ValueError, KeyError):
        raise ValueError(
            f"Node `{node}`: rate_limit must look like '10/s', '100/m' or '5/h', got {rate!r}"
        ) from None
    if calls <= 0:
        raise ValueError(f"Node `{node}`: rate_limit must allow at least one call, got {rate!r}")
    return seconds / calls
