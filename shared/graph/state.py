"""StateGraph: the LangGraph builder API, and the compiled graph every process loads.

The builder only records structure. `compile()` checks it and freezes it into a
`CompiledStateGraph`, which knows its node functions (for workers), its `GraphSpec` (for the
orchestrator's superstep algorithm) and a fingerprint of its structure (so that processes
running different versions of a graph refuse to mix them).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import fakeredis

from shared.pregel import END, START, GraphSpec
from shared.schema import StateSchema
from shared.types import Command, RetryPolicy, StateSnapshot

RESERVED_CHARS = ("|", ":")


def _qualname(obj: Any) -> str:
    target = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else type(obj)
    if callable(obj) and not inspect.isclass(obj) and not hasattr(obj, "__qualname__"):
        target = type(obj)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


@dataclass(frozen=True)
class NodeSpec:
    """A node: its function, how it wants to be called, and how to retry it."""

    name: str
    fn: Callable[..., Any]
    retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None
    timeout: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error_handler: Callable[..., Any] | None = None

    @property
    def handler_name(self) -> str:
        """The name LangGraph shows for the node's error handler in streams."""
        return f"__error_handler__{self.name}"


@dataclass(frozen=True)
class Branch:
    """A conditional edge: `path` picks targets from the state after its source node ran."""

    path: Callable[..., Any]
    path_map: dict[Hashable, str] | None = None

    def resolve(self, result: Any) -> list[Any]:
        """Map a path result (name, list of names, Send, list of Sends) to targets."""
        results = result if isinstance(result, list | tuple) else [result]
        if self.path_map is None:
            return list(results)
        return [r if not isinstance(r, Hashable) or r not in self.path_map else self.path_map[r]
                for r in results]


def _command_targets(fn: Callable[..., Any]) -> tuple[str, ...]:
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


class StateGraph:
    """A graph whose nodes read a shared state and return partial updates to it."""

    def __init__(
        self,
        state_schema: type,
        context_schema: type | None = None,
        *,
        input_schema: type | None = None,
        output_schema: type | None = None,
        **_: Any,
    ) -> None:
        self.state_schema = state_schema
        self.context_schema = context_schema
        self.input_schema = input_schema or state_schema
        self.output_schema = output_schema or state_schema
        self.nodes: dict[str, NodeSpec] = {}
        self.node_defaults: dict[str, Any] = {}
        self.edges: set[tuple[str, str]] = set()
        self.joins: list[tuple[tuple[str, ...], str]] = []
        self.branches: dict[str, list[Branch]] = {}
        self.compiled = False

    def add_node(
        self,
        node: str | Callable[..., Any],
        action: Callable[..., Any] | None = None,
        *,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
        timeout: float | timedelta | None = None,
        metadata: dict[str, Any] | None = None,
        error_handler: Callable[..., Any] | None = None,
        **_: Any,
    ) -> StateGraph:
        if not isinstance(node, str):
            action, node = node, getattr(node, "__name__", type(node).__name__)
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
        self.nodes[node] = NodeSpec(
            node, action, retry_policy, _seconds(timeout), metadata or {}, error_handler
        )
        return self

    def set_node_defaults(
        self,
        *,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
        error_handler: Callable[..., Any] | None = None,
        timeout: float | timedelta | None = None,
        **_: Any,
    ) -> StateGraph:
        """Policies for every node that sets none of its own, applied at `compile()`."""
        if retry_policy is not None:
            self.node_defaults["retry_policy"] = retry_policy
        if error_handler is not None:
            self.node_defaults["error_handler"] = error_handler
        if timeout is not None:
            self.node_defaults["timeout"] = _seconds(timeout)
        return self

    def add_edge(self, start_key: str | list[str], end_key: str) -> StateGraph:
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
    ) -> StateGraph:
        mapping: dict[Hashable, str] | None = (
            {name: name for name in path_map} if isinstance(path_map, list) else path_map
        )
        name = getattr(path, "__name__", "condition")
        if any(getattr(b.path, "__name__", "condition") == name for b in self.branches.get(source, [])):
            raise ValueError(f"Branch with name `{name}` already exists for node `{source}`")
        self.branches.setdefault(source, []).append(Branch(path, mapping))
        return self

    def add_sequence(self, nodes: Sequence[Callable[..., Any] | tuple[str, Callable[..., Any]]]
                     ) -> StateGraph:
        if not nodes:
            raise ValueError("Sequence requires at least one node.")
        previous: str | None = None
        for item in nodes:
            name, fn = item if isinstance(item, tuple) else (getattr(item, "__name__", ""), item)
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

    def set_entry_point(self, key: str) -> StateGraph:
        return self.add_edge(START, key)

    def set_conditional_entry_point(
        self, path: Callable[..., Any], path_map: dict[Hashable, str] | list[str] | None = None
    ) -> StateGraph:
        return self.add_conditional_edges(START, path, path_map)

    def set_finish_point(self, key: str) -> StateGraph:
        return self.add_edge(key, END)

    def validate(self) -> None:
        known = set(self.nodes)
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
        for node in self.nodes.values():
            for target in _command_targets(node.fn):
                if target != END and target not in known:
                    raise ValueError(f"Found edge ending at unknown node `{target}`")

    def compile(
        self,
        checkpointer: Any = None,
        *,
        name: str | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        **_: Any,
    ) -> CompiledStateGraph:
        self.validate()
        for key in (interrupt_before, interrupt_after):
            for node in [] if key in (None, "*") else key:
                if node not in self.nodes:
                    raise ValueError(f"Interrupt node `{node}` not found")
        self.compiled = True
        return CompiledStateGraph(
            self, name=name or "LangGraph", explicit_name=name is not None,
            checkpointer=checkpointer,
            interrupt_before=self._breakpoints(interrupt_before),
            interrupt_after=self._breakpoints(interrupt_after),
        )

    def _breakpoints(self, nodes: Any) -> frozenset[str]:
        if nodes == "*":
            return frozenset(self.nodes)
        return frozenset(nodes or ())


class CompiledStateGraph:
    """A frozen graph: what workers execute, what orchestrators step, what users invoke.

    `invoke`/`stream` run on the embedded default (the cluster code over an in-memory Redis);
    `with_cluster(url)` returns the same graph bound to a real cluster.
    """

    stream_mode = "updates"

    def __init__(
        self, builder: StateGraph, *, name: str, explicit_name: bool = False,
        checkpointer: Any = None, interrupt_before: frozenset[str] = frozenset(),
        interrupt_after: frozenset[str] = frozenset(),
    ) -> None:
        self.builder = builder
        self.name = name
        self.explicit_name = explicit_name
        self.checkpointer = _embedded_store(checkpointer)
        self.interrupt_before = interrupt_before
        self.interrupt_after = interrupt_after
        self.schema = StateSchema.of(builder.state_schema)
        self.input_schema = StateSchema.of(builder.input_schema)
        self.output_schema = StateSchema.of(builder.output_schema)
        self.nodes: dict[str, NodeSpec] = {
            name: _with_defaults(spec, builder.node_defaults) for name, spec in builder.nodes.items()
        }
        for spec in self.nodes.values():
            if spec.timeout is not None and not is_async(spec.fn):
                raise ValueError(
                    "Node timeouts are only supported for async nodes because sync Python "
                    f"execution cannot be safely cancelled in-process. Node '{spec.name}' is sync."
                )
        self.branches: dict[str, list[Branch]] = {k: list(v) for k, v in builder.branches.items()}
        edges: dict[str, list[str]] = {}
        for source, target in sorted(builder.edges):
            edges.setdefault(source, []).append(target)
        self.spec = GraphSpec(
            schema=self.schema,
            nodes=frozenset(self.nodes),
            edges={k: tuple(v) for k, v in edges.items()},
            joins=tuple(builder.joins),
            order=tuple(self.nodes),
        )
        self.fingerprint = self._fingerprint()
        self.cluster_url: str | None = None

    def _fingerprint(self) -> str:
        """A hash of the structure: nodes and their functions, edges, branches, state keys."""
        doc = {
            "schema": [
                (k, _qualname(c.reducer) if c.reducer else None)
                for k, c in sorted(self.schema.channels.items())
            ],
            "nodes": sorted(
                (n, _qualname(s.fn), _qualname(s.error_handler) if s.error_handler else None)
                for n, s in self.nodes.items()
            ),
            "edges": sorted(self.builder.edges),
            "joins": sorted((sorted(s), t) for s, t in self.builder.joins),
            "breakpoints": [sorted(self.interrupt_before), sorted(self.interrupt_after)],
            "branches": sorted(
                (src, _qualname(b.path), sorted((repr(k), v) for k, v in (b.path_map or {}).items()))
                for src, bs in self.branches.items()
                for b in bs
            ),
        }
        blob = json.dumps(doc, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_cluster(self, redis_url: str) -> CompiledStateGraph:
        """This graph, but `invoke`/`stream` submit to the cluster at `redis_url`."""
        clone = object.__new__(CompiledStateGraph)
        clone.__dict__.update(self.__dict__)
        clone.cluster_url = redis_url
        return clone

    # -- running: every call goes through the same run protocol (embedded or cluster) --

    async def astream(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        stream_mode: str | Sequence[str] | None = None,
        context: Any = None,
        **_: Any,
    ) -> AsyncIterator[Any]:
        from orchestrator.embedded import stream_graph

        mode = stream_mode or self.stream_mode
        modes = [mode] if isinstance(mode, str) else list(mode)
        async for event_mode, payload in stream_graph(self, input, config, modes, context):
            yield payload if isinstance(mode, str) else (event_mode, payload)

    def stream(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        stream_mode: str | Sequence[str] | None = None,
        context: Any = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        from orchestrator.embedded import iterate_sync

        yield from iterate_sync(
            self.astream(input, config, stream_mode=stream_mode, context=context, **kwargs)
        )

    async def ainvoke(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        stream_mode: str = "values",
        context: Any = None,
        **_: Any,
    ) -> Any:
        from orchestrator.embedded import invoke_graph

        return await invoke_graph(self, input, config, context)

    def invoke(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        stream_mode: str = "values",
        context: Any = None,
        **_: Any,
    ) -> Any:
        from orchestrator.embedded import run_sync

        return run_sync(self.ainvoke(input, config, context=context))

    # -- threads: state, history, updates (embedded with a checkpointer, or on a cluster) --

    async def aget_state(self, config: dict[str, Any], **_: Any) -> StateSnapshot:
        return await self._on_threads(lambda client: client.get_state(config))  # type: ignore[no-any-return]

    def get_state(self, config: dict[str, Any], **kwargs: Any) -> StateSnapshot:
        from orchestrator.embedded import run_sync

        return run_sync(self.aget_state(config, **kwargs))

    async def aget_state_history(
        self, config: dict[str, Any], *, filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None, limit: int | None = None,
    ) -> AsyncIterator[StateSnapshot]:
        history = await self._on_threads(
            lambda client: client.get_state_history(config, filter=filter, before=before,
                                                    limit=limit)
        )
        for snapshot in history:
            yield snapshot

    def get_state_history(
        self, config: dict[str, Any], *, filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None, limit: int | None = None,
    ) -> Iterator[StateSnapshot]:
        from orchestrator.embedded import run_sync

        history = run_sync(self._on_threads(
            lambda client: client.get_state_history(config, filter=filter, before=before,
                                                    limit=limit)
        ))
        yield from history

    async def aupdate_state(
        self, config: dict[str, Any], values: Any, as_node: str | None = None, **_: Any
    ) -> dict[str, Any]:
        return await self._on_threads(  # type: ignore[no-any-return]
            lambda client: client.update_state(self.name, config, values, as_node)
        )

    def update_state(
        self, config: dict[str, Any], values: Any, as_node: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        from orchestrator.embedded import run_sync

        return run_sync(self.aupdate_state(config, values, as_node, **kwargs))

    async def _on_threads(self, call: Callable[[Any], Awaitable[Any]]) -> Any:
        from orchestrator.embedded import backend

        if self.cluster_url is None and self.checkpointer is None:
            raise ValueError("No checkpointer set")
        async with backend(self) as client:
            return await call(client)


def _embedded_store(checkpointer: Any) -> Any:
    """The store that keeps this graph's threads when it runs embedded: the saver's own
    in-memory Redis, or one of its own for a checkpointer of another kind (LangGraph's)."""
    if checkpointer is None or checkpointer is False:
        return None
    if isinstance(getattr(checkpointer, "server", None), fakeredis.FakeServer):
        return checkpointer
    from shared.checkpoint.memory import InMemorySaver

    return InMemorySaver()


def _seconds(timeout: float | timedelta | None) -> float | None:
    if isinstance(timeout, timedelta):
        return timeout.total_seconds()
    return timeout


def _with_defaults(spec: NodeSpec, defaults: dict[str, Any]) -> NodeSpec:
    """A node with the graph's default policies where it sets none of its own."""
    unset = {k: v for k, v in defaults.items() if getattr(spec, k) is None}
    return replace(spec, **unset) if unset else spec


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling `fn` gives a coroutine (async functions, objects with async __call__)."""
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)
