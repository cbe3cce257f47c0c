"""StateGraph: the LangGraph builder API.

The builder only records structure. `compile()` checks it and freezes it into a
`CompiledStateGraph` (shared/graph/compiled.py), the graph every process loads.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Generic, Self

from arqgraph.constants import END, START
from arqgraph.core.calls import is_async as runs_async
from arqgraph.core.schema import StateSchema
from arqgraph.graph.subgraph import SubgraphNode, is_compiled_graph
from arqgraph.types import CachePolicy, Command, RetryPolicy, TimeoutPolicy, TracePolicy
from arqgraph.typing import ContextT, InputT, OutputT, StateT

if TYPE_CHECKING:
    from arqgraph.graph.compiled import CompiledStateGraph

RESERVED_CHARS = ("|", ":")
DEFAULT_ERROR_HANDLER = "__default_error_handler__"  # LangGraph's name for a default handler


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


def _node_name(action: Any) -> str:
    """The name LangGraph gives a node added without one: a runnable's (a compiled graph, a
    chain, a ToolNode) `get_name()`, else the function's name."""
    if callable(getattr(action, "get_name", None)):
        return str(action.get_name())
    return str(getattr(action, "__name__", type(action).__name__))


def _inferred_input_schema(fn: Callable[..., Any]) -> type | None:
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


class StateGraph(Generic[StateT, ContextT, InputT, OutputT]):
    """A graph whose nodes read a shared state and return partial updates to it.

    Generic as LangGraph's: `StateGraph[State]`, `StateGraph[State, Context, Input, Output]`.
    """

    def __init__(
        self,
        state_schema: type[StateT],
        context_schema: type[ContextT] | None = None,
        *,
        input_schema: type[InputT] | None = None,
        output_schema: type[OutputT] | None = None,
        **_: Any,
    ) -> None:
        self.state_schema = state_schema
        self.context_schema = context_schema
        self.input_schema = input_schema or state_schema
        self.output_schema = output_schema or state_schema
        StateSchema.of(self.state_schema, self.input_schema, self.output_schema)  # (checks them)
        self.nodes: dict[str, NodeSpec] = {}
        self.node_defaults: dict[str, Any] = {}
        self.edges: set[tuple[str, str]] = set()
        self.joins: list[tuple[tuple[str, ...], str]] = []
        self.branches: dict[str, list[Branch]] = {}
        self.compiled = False

    @property
    def _schema(self) -> StateSchema:
        return StateSchema.of(self.state_schema, self.input_schema, self.output_schema,
                              *(n.input_schema for n in self.nodes.values() if n.input_schema))

    @property
    def channels(self) -> dict[str, Any]:
        """The graph's channels by key: every key of its state, input, output and node input
        schemas but the managed ones, as LangGraph lists them."""
        return dict(self._schema.channels)

    @property
    def managed(self) -> dict[str, Any]:
        """The graph's managed values (`RemainingSteps`, `IsLastStep`) by key."""
        return dict(self._schema.managed)

    def add_node(
        self,
        node: str | Callable[..., Any],
        action: Callable[..., Any] | None = None,
        *,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
        timeout: float | timedelta | TimeoutPolicy | None = None,
        metadata: dict[str, Any] | None = None,
        error_handler: Callable[..., Any] | None = None,
        concurrency: int | None = None,
        rate_limit: str | None = None,
        input_schema: type | None = None,
        defer: bool = False,
        cache_policy: CachePolicy[Any] | None = None,
        trace_policy: TracePolicy | None = None,
        destinations: dict[str, str] | tuple[str, ...] | None = None,
        **_: Any,
    ) -> Self:
        if not isinstance(node, str):
            action, node = node, _node_name(node)
        if is_compiled_graph(action):
            action = SubgraphNode(action)
        if isinstance(action, dict):  # a map of runnables run in parallel, as LangChain's
            from langchain_core.runnables import RunnableParallel

            action = RunnableParallel(action)
        if action is None:
            raise ValueError(f"Node `{node}` needs a function to run")
        if node in self.nodes:
            raise ValueError(f"Node `{node}` already present.")
        if node in (START, END):
            raise ValueError(f"Node `{node}` is reserved.")
        for char in RESERVED_CHARS:
            if char in node:
                raise ValueError(
                    f"'{char}' is a reserved character and is not allowed in the node names."
                )
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise ValueError(f"Node `{node}`: concurrency must be a positive int, got {concurrency!r}")
        if trace_policy is not None and not isinstance(trace_policy, TracePolicy):
            raise TypeError(f"Node `{node}`: trace_policy must be a TracePolicy, "
                            f"got {type(trace_policy).__name__}")
        interval = None if rate_limit is None else parse_rate(node, rate_limit)
        self.nodes[node] = NodeSpec(
            node, action, retry_policy, TimeoutPolicy.coerce(timeout), metadata or {}, error_handler,
            concurrency, rate_limit, interval, input_schema or _inferred_input_schema(action),
            defer, cache_policy, trace_policy, destinations,
        )
        return self

    def set_node_defaults(
        self,
        *,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
        error_handler: Callable[..., Any] | None = None,
        timeout: float | timedelta | TimeoutPolicy | None = None,
        cache_policy: CachePolicy[Any] | None = None,
        **_: Any,
    ) -> Self:
        """Policies for every node that sets none of its own, applied at `compile()`."""
        if retry_policy is not None:
            self.node_defaults["retry_policy"] = retry_policy
        if cache_policy is not None:
            self.node_defaults["cache_policy"] = cache_policy
        if error_handler is not None:
            self.node_defaults["error_handler"] = error_handler
        if timeout is not None:
            self.node_defaults["timeout"] = TimeoutPolicy.coerce(timeout)
        return self

    def add_edge(self, start_key: str | list[str], end_key: str) -> Self:
        if isinstance(start_key, str):
            if start_key == END:
                raise ValueError("END cannot be a start node")
            if end_key == START:
                raise ValueError("START cannot be an end node")
            self.edges.add((start_key, end_key))
            return self
        for start in start_key:
            if start == END:
                raise ValueError("END cannot be a start node")
            if start not in self.nodes:
                raise ValueError(f"Need to add_node `{start}` first")
        if end_key not in self.nodes and end_key != END:
            raise ValueError(f"Need to add_node `{end_key}` first")
        self.joins.append((tuple(start_key), end_key))
        return self

    def add_conditional_edges(
        self,
        source: str,
        path: Callable[..., Any],
        path_map: dict[Hashable, str] | list[str] | None = None,
    ) -> Self:
        mapping: dict[Hashable, str] | None = (
            {name: name for name in path_map} if isinstance(path_map, list) else path_map
        )
        name = getattr(path, "__name__", "condition")
        if any(getattr(b.path, "__name__", "condition") == name for b in self.branches.get(source, [])):
            raise ValueError(f"Branch with name `{name}` already exists for node `{source}`")
        self.branches.setdefault(source, []).append(
            Branch(path, mapping, _inferred_input_schema(path))
        )
        return self

    def add_sequence(self, nodes: Sequence[Callable[..., Any] | tuple[str, Callable[..., Any]]]
                     ) -> Self:
        if not nodes:
            raise ValueError("Sequence requires at least one node.")
        previous: str | None = None
        for item in nodes:
            name, fn = item if isinstance(item, tuple) else (_node_name(item), item)
            if name in self.nodes:
                raise ValueError(
                    f"Node names must be unique: node with the name '{name}' already exists. If you "
                    "need to use two different runnables/callables with the same name (for "
                    "example, using `lambda`), please provide them as tuples (name, "
                    "runnable/callable)."
                )
            self.add_node(name, fn)
            if previous is not None:
                self.add_edge(previous, name)
            previous = name
        return self

    def set_entry_point(self, key: str) -> Self:
        return self.add_edge(START, key)

    def set_conditional_entry_point(
        self, path: Callable[..., Any], path_map: dict[Hashable, str] | list[str] | None = None
    ) -> Self:
        return self.add_conditional_edges(START, path, path_map)

    def set_finish_point(self, key: str) -> Self:
        return self.add_edge(key, END)

    def validate(self, interrupt: Sequence[str] | None = None) -> Self:
        """Check the structure: edges and routes name known nodes, there is an entrypoint, the
        `interrupt` nodes (breakpoints) exist, the error handlers' names are free."""
        known = set(self.nodes)
        handlers = {s.handler_name for s in self.nodes.values() if s.error_handler is not None}
        for node in interrupt or ():  # (LangGraph's handlers are nodes: it takes their names,
            # though a handler runs in its node's step, with no stop before or after it)
            if node not in known | handlers:
                raise ValueError(f"Interrupt node `{node}` not found")
        if "error_handler" in self.node_defaults and DEFAULT_ERROR_HANDLER in known:
            raise ValueError(f"Auto-generated default error handler node "
                             f"`{DEFAULT_ERROR_HANDLER}` already exists.")
        for spec in self.nodes.values():
            if spec.error_handler is not None and spec.handler_name in known:
                raise ValueError(
                    f"Auto-generated error handler node `{spec.handler_name}` already exists.")
        sources = {s for s, _ in self.edges} | {s for starts, _ in self.joins for s in starts}
        sources |= set(self.branches)
        for source in sorted(sources):
            if source != START and source not in known:
                raise ValueError(f"Found edge starting at unknown node '{source}'")
        if START not in sources:
            raise ValueError(
                "Graph must have an entrypoint: add at least one edge from START to another node"
            )
        targets = {t for _, t in self.edges} | {t for _, t in self.joins}
        for target in sorted(targets):
            if target != END and target not in known:
                raise ValueError(f"Found edge ending at unknown node `{target}`")
        for source, branches in self.branches.items():
            for branch in branches:
                for target in (branch.path_map or {}).values():
                    if target != END and target not in known:
                        name = getattr(branch.path, "__name__", "condition")
                        raise ValueError(
                            f"At '{source}' node, '{name}' branch found unknown target '{target}'"
                        )
        for spec in self.nodes.values():
            for target in spec.ends():
                if target != END and target not in known:
                    raise ValueError(f"Found edge ending at unknown node `{target}`")
        return self

    def compile(
        self,
        checkpointer: Any = None,
        *,
        name: str | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        cache: Any = None,
        store: Any = None,
        transformers: Sequence[Any] | None = None,
        **_: Any,
    ) -> CompiledStateGraph[StateT, ContextT, InputT, OutputT]:
        breakpoints = [n for key in (interrupt_before, interrupt_after)
                       for n in ([] if key in (None, "*") else key)]
        self.validate(interrupt=breakpoints)
        _check_checkpointer(checkpointer)
        self.compiled = True
        from arqgraph.graph.compiled import CompiledStateGraph

        compiled: CompiledStateGraph[StateT, ContextT, InputT, OutputT] = CompiledStateGraph(
            self, name=name or "LangGraph", explicit_name=name is not None,
            checkpointer=checkpointer,
            interrupt_before=self._breakpoints(interrupt_before),
            interrupt_after=self._breakpoints(interrupt_after),
            cache=cache, store=store,
        )
        compiled.stream_transformers = tuple(transformers or ())
        return compiled

    def _breakpoints(self, nodes: Any) -> frozenset[str]:
        if nodes == "*":
            return frozenset(self.nodes)
        return frozenset(nodes or ())


def _check_checkpointer(checkpointer: Any) -> None:
    """As LangGraph: None, True, False, or a saver (arqgraph's, or one of LangGraph's)."""
    if checkpointer in (None, True, False) or hasattr(checkpointer, "server") or all(
        callable(getattr(checkpointer, m, None)) for m in ("get_tuple", "put")
    ):
        return
    raise TypeError(
        "Invalid checkpointer provided. Expected an instance of `BaseCheckpointSaver`, `True`, "
        f"`False`, or `None`. Received {type(checkpointer).__name__!s}. Pass a proper saver "
        "(e.g., InMemorySaver, AsyncPostgresSaver)."
    )




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
