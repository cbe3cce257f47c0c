"""StateGraph: the LangGraph builder API.

The builder only records structure. `compile()` checks it and freezes it into a
`CompiledStateGraph` (shared/graph/compiled.py), the graph every process loads.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Self

from arqgraph.constants import END, START
from arqgraph.core.schema import StateSchema
from arqgraph.graph.specs import (
    Branch,
    NodeSpec,
    inferred_input_schema,
    node_name,
    parse_rate,
)
from arqgraph.graph.subgraph import SubgraphNode, is_compiled_graph
from arqgraph.types import CachePolicy, RetryPolicy, TimeoutPolicy, TracePolicy
from arqgraph.typing import ContextT, InputT, OutputT, StateT

if TYPE_CHECKING:
    from arqgraph.graph.compiled import CompiledStateGraph

RESERVED_CHARS = ("|", ":")
DEFAULT_ERROR_HANDLER = "__default_error_handler__"  # LangGraph's name for a default handler


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
            action, node = node, node_name(node)
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
            concurrency, rate_limit, interval, input_schema or inferred_input_schema(action),
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
            Branch(path, mapping, inferred_input_schema(path))
        )
        return self

    def add_sequence(self, nodes: Sequence[Callable[..., Any] | tuple[str, Callable[..., Any]]]
                     ) -> Self:
        if not nodes:
            raise ValueError("Sequence requires at least one node.")
        previous: str | None = None
        for item in nodes:
            name, fn = item if isinstance(item, tuple) else (node_name(item), item)
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
