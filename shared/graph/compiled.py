"""The compiled graph every process loads: what workers execute, what orchestrators step, what
users invoke.

It knows its node functions (for workers), its `GraphSpec` (for the orchestrator's superstep
algorithm) and a fingerprint of its structure (so that processes running different versions of a
graph refuse to mix them).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import replace
from typing import Any, Generic, Self

from arqgraph.config import merge_configs
from arqgraph.constants import (
    CONFIG_KEY_DURABILITY,
    CONFIG_KEY_INTERRUPT_AFTER,
    CONFIG_KEY_INTERRUPT_BEFORE,
    CONFIG_KEY_STEP_TIMEOUT,
    CONFIG_KEY_SYNC,
)
from arqgraph.core.calls import (
    CallScheduler,
    check_timeout_async,
    current_scheduler,
    qualname,
)
from arqgraph.core.graphs import remember
from arqgraph.core.pregel import GraphSpec
from arqgraph.core.schema import StateSchema, check_input, coerce_context
from arqgraph.graph import batching
from arqgraph.graph.describing import DescribingMethods
from arqgraph.graph.specs import Branch, NodeSpec
from arqgraph.graph.state import StateGraph
from arqgraph.graph.streaming import graph_output, shaped
from arqgraph.graph.subgraph import graph_in
from arqgraph.graph.threads import ThreadMethods
from arqgraph.run_report import subgraph_run
from arqgraph.runtime import RunControl
from arqgraph.types import current_interrupts
from arqgraph.typing import ContextT, InputT, OutputT, StateT

SYNC_CALL = "_arqgraph_sync_call"  # (the keyword `invoke` and `stream` pass to their async twins)
_SYNC: dict[str, Any] = {SYNC_CALL: True}

class CompiledStateGraph(ThreadMethods, DescribingMethods, Generic[StateT, ContextT, InputT, OutputT]):
    """A frozen graph: what workers execute, what orchestrators step, what users invoke.

    `invoke`/`stream` run on the embedded default (the cluster code over an in-memory Redis);
    `with_cluster(url)` returns the same graph bound to a real cluster.
    """

    stream_mode = "updates"
    returns_value = False  # an entrypoint's runs take any input and return a value (arqgraph.func)
    step_timeout: float | None = None  # seconds a step's nodes may run (TimeoutError after)

    def __init__(
        self, builder: StateGraph[Any, Any, Any, Any], *, name: str, explicit_name: bool = False,
        checkpointer: Any = None, interrupt_before: frozenset[str] = frozenset(),
        interrupt_after: frozenset[str] = frozenset(), cache: Any = None, store: Any = None,
    ) -> None:
        self.builder = builder
        self.name = name
        self.explicit_name = explicit_name
        # a subgraph's: True keeps its state from call to call, False keeps none (LangGraph's)
        self.persistence: bool | None = checkpointer if isinstance(checkpointer, bool) else None
        self.checkpointer = _embedded_store(None if checkpointer is True else checkpointer)
        self.interrupt_before = interrupt_before
        self.interrupt_after = interrupt_after
        self.cache = cache  # nodes with a cache policy are cached only with a cache
        # long-term memory: this store embedded; on a cluster, one in Redis with its index
        self.store = store
        self.nodes: dict[str, NodeSpec] = {
            name: _with_defaults(spec, builder.node_defaults) for name, spec in builder.nodes.items()
        }
        own = [s.input_schema for s in self.nodes.values() if s.input_schema is not None]
        own += [b.input_schema for bs in builder.branches.values() for b in bs if b.input_schema]
        # The channels: every key of the state, input, output and node input schemas.
        self.schema = StateSchema.of(
            builder.state_schema, builder.input_schema, builder.output_schema, *own
        )
        self.state_schema = StateSchema.of(builder.state_schema)
        self.input_schema = StateSchema.of(builder.input_schema)
        self.output_schema = StateSchema.of(builder.output_schema)
        self.context_schema = builder.context_schema
        self.node_schemas = {
            name: StateSchema.of(spec.input_schema) if spec.input_schema else self.state_schema
            for name, spec in self.nodes.items()
        }
        for spec in self.nodes.values():
            check_timeout_async(spec.name, spec.fn, spec.timeout)
        self.branches: dict[str, list[Branch]] = {k: list(v) for k, v in builder.branches.items()}
        self.branch_schemas = {  # what each branch reads: its own schema, else its source's
            (source, i): StateSchema.of(b.input_schema) if b.input_schema
            else self.node_schemas.get(source, self.state_schema)
            for source, bs in self.branches.items() for i, b in enumerate(bs)
        }
        edges: dict[str, list[str]] = {}
        for source, target in sorted(builder.edges):
            edges.setdefault(source, []).append(target)
        self.spec = GraphSpec(
            schema=self.schema,
            nodes=frozenset(self.nodes),
            edges={k: tuple(v) for k, v in edges.items()},
            joins=tuple(builder.joins),
            order=tuple(self.nodes),
            deferred=frozenset(n for n, s in self.nodes.items() if s.defer),
        )
        self.fingerprint = self._fingerprint()
        remember(self)  # (workers find it when a parent graph runs it as a subgraph)
        self.cluster_url: str | None = None
        self.config: dict[str, Any] | None = None  # merged into each call's (`with_config`)
        self.stream_transformers: tuple[Any, ...] = ()  # `compile(transformers=...)`, for v3

    def _fingerprint(self) -> str:
        """A hash of the structure: nodes and their functions, edges, branches, state keys."""
        doc = {
            "schema": [
                (k, qualname(c.reducer) if c.reducer else None)
                for k, c in sorted(self.schema.channels.items())
            ],
            "nodes": sorted(
                (n, qualname(s.fn), qualname(s.error_handler) if s.error_handler else None,
                 s.defer, getattr(s.fn, "fingerprint", None))
                for n, s in self.nodes.items()
            ),
            "edges": sorted(self.builder.edges),
            "joins": sorted((sorted(s), t) for s, t in self.builder.joins),
            "breakpoints": [sorted(self.interrupt_before), sorted(self.interrupt_after)],
            "branches": sorted(
                (src, qualname(b.path), sorted((repr(k), v) for k, v in (b.path_map or {}).items()))
                for src, bs in self.branches.items()
                for b in bs
            ),
        }
        blob = json.dumps(doc, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def copy(self, update: dict[str, Any] | None = None) -> Self:
        """A copy of this graph (the same nodes and structure) with the attributes `update`
        names set anew."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.update(update or {})
        return clone

    def with_cluster(self, redis_url: str) -> Self:
        """This graph, but `invoke`/`stream` submit to the cluster at `redis_url`."""
        return self.copy({"cluster_url": redis_url})

    def with_config(self, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Self:
        """This graph with a config merged into every call's (`configurable`, `tags`,
        `recursion_limit`, ...), as a LangChain Runnable's `with_config`."""
        return self.copy({"config": merge_configs(self.config, config, kwargs)})

    # -- running: every call goes through the same run protocol (embedded or cluster) --

    async def astream(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        stream_mode: str | Sequence[str] | None = None,
        context: Any = None,
        durability: str | None = None,
        subgraphs: bool = False,
        version: str = "v1",
        control: RunControl | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        **_: Any,
    ) -> AsyncIterator[Any]:
        """The run's events: one mode's payloads, (mode, payload) for several, the namespace
        first with `subgraphs`; with `version="v2"`, LangGraph's typed stream parts."""
        from arqgraph.embedded import stream_graph

        mode = stream_mode or self.stream_mode
        modes = [mode] if isinstance(mode, str) else list(mode)
        self._check_call(input, context)
        config = self._merged(config, durability, interrupt_before, interrupt_after,
                              sync=bool(_.get(SYNC_CALL)))
        if (scheduler := self._parent_task()) is not None:  # a subgraph, streamed to its node
            events: Any = self._streamed_as_subgraph(scheduler, input, config, modes, subgraphs)
        else:
            events = stream_graph(self, input, config, modes, context, subgraphs, control)
        # (closed with this stream, not later by the collector: a stream closed early
        # stops its run before `aclose` returns)
        async with contextlib.aclosing(_each(events)) as each:
            async for ns, event_mode, payload in each:
                shown = graph_in(self, ns) if ns and version == "v2" else self
                yield shaped(shown.output_schema, shown.state_schema, ns, event_mode, payload,
                             mode, subgraphs, version)

    def stream(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        stream_mode: str | Sequence[str] | None = None,
        context: Any = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        from arqgraph.embedded import iterate_sync

        yield from iterate_sync(self.astream(input, config, stream_mode=stream_mode,
                                             context=context, **kwargs, **_SYNC))

    def stream_events(
        self, input: Any, config: Mapping[str, Any] | None = None, *, version: str = "v3",
        transformers: Sequence[Any] | None = None, **kwargs: Any,
    ) -> Any:
        """LangGraph's v3 event stream: a run handle whose projections (`run.values`,
        `run.messages`, `run.subgraphs`...) drive the run as they are read."""
        from arqgraph.stream.runs import stream_events

        return stream_events(self, input, config, version, transformers, kwargs)

    def astream_events(
        self, input: Any, config: Mapping[str, Any] | None = None, *, version: str = "v2",
        transformers: Sequence[Any] | None = None, **kwargs: Any,
    ) -> Any:
        """`stream_events`, async: await it (v3) for the run handle. Versions "v1" and "v2"
        are LangChain's callback events of the graph's run and of its nodes'."""
        from arqgraph.stream.runs import astream_events

        return astream_events(self, input, config, version, transformers, kwargs)

    def astream_log(self, input: Any, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """LangChain's run log of the graph (what `astream_events(version="v1")` reads)."""
        from arqgraph.stream.runs import astream_log

        return astream_log(self, input, config, kwargs)

    async def ainvoke(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        stream_mode: str = "values",
        context: Any = None,
        durability: str | None = None,
        version: str = "v1",
        control: RunControl | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        **kwargs: Any,
    ) -> Any:
        """The run's output; with `stream_mode` other than "values", the list of its events
        in that mode; with `version="v2"`, a GraphOutput (or the list of stream parts)."""
        from arqgraph.embedded import invoke_graph

        if stream_mode != "values":
            return [event async for event in self.astream(
                input, config, stream_mode=stream_mode, context=context, durability=durability,
                version=version, control=control, interrupt_before=interrupt_before,
                interrupt_after=interrupt_after, **kwargs)]
        self._check_call(input, context)
        config = self._merged(config, durability, interrupt_before, interrupt_after,
                              sync=bool(kwargs.get(SYNC_CALL)))
        if (scheduler := self._parent_task()) is not None:
            output = await self._as_subgraph(scheduler, input, config)
        else:
            output = await invoke_graph(self, input, config, context, control)
        return graph_output(self.output_schema, output) if version == "v2" else output

    def _parent_task(self) -> CallScheduler | None:
        """The task this graph is invoked in, on a worker, which runs it as a child run on the
        same pool; None when invoked from outside a graph (or bound to another cluster)."""
        return current_scheduler.get() if self.cluster_url is None else None

    async def _as_subgraph(
        self, scheduler: CallScheduler, input: Any, config: Mapping[str, Any] | None
    ) -> Any:
        scratch = current_interrupts.get()
        resume = list(scratch.resume) if scratch is not None else []
        config, run = await subgraph_run(dict(config or {}), input, self.get_name())
        try:
            output = await asyncio.wrap_future(scheduler.run_subgraph(self, input, config, resume))
        except BaseException as exc:
            if run is not None:
                await run.on_chain_error(exc)
            raise
        if run is not None:
            await run.on_chain_end(output, inputs=input)
        return output

    async def _streamed_as_subgraph(
        self, scheduler: CallScheduler, input: Any, config: Mapping[str, Any] | None,
        modes: Sequence[str], subgraphs: bool,
    ) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
        scratch = current_interrupts.get()
        resume = list(scratch.resume) if scratch is not None else []
        config, run = await subgraph_run(dict(config or {}), input, self.get_name())
        box: dict[str, Any] = {}
        try:
            async for event in scheduler.stream_subgraph(self, input, config, resume, modes,
                                                         subgraphs, box):
                yield event
        except BaseException as exc:
            if run is not None:
                await run.on_chain_error(exc)
            raise
        if run is not None:
            await run.on_chain_end(box.get("output"), inputs=input)

    def invoke(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        stream_mode: str = "values",
        context: Any = None,
        **kwargs: Any,
    ) -> Any:
        from arqgraph.embedded import run_sync

        return run_sync(self.ainvoke(input, config, stream_mode=stream_mode, context=context,
                                     **kwargs, **_SYNC))

    async def abatch(self, inputs: Sequence[Any], config: Any = None, *,
                     return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        """One run per input (`config` one for all, or one each), outputs in input order."""
        return await batching.abatch(self, inputs, config, return_exceptions, kwargs)

    def batch(self, inputs: Sequence[Any], config: Any = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        from arqgraph.embedded import run_sync

        return run_sync(batching.abatch(self, inputs, config, return_exceptions,
                                        {**kwargs, **_SYNC}))

    def abatch_as_completed(self, inputs: Sequence[Any], config: Any = None, *,
                            return_exceptions: bool = False, **kwargs: Any
                            ) -> AsyncIterator[tuple[int, Any]]:
        """(index, output) of each run as it ends."""
        return batching.as_completed(self, inputs, config, return_exceptions, kwargs)

    def batch_as_completed(self, inputs: Sequence[Any], config: Any = None, *,
                           return_exceptions: bool = False, **kwargs: Any
                           ) -> Iterator[tuple[int, Any]]:
        from arqgraph.embedded import iterate_sync

        return iterate_sync(batching.as_completed(
            self, inputs, config, return_exceptions, {**kwargs, **_SYNC}))

    def _merged(
        self, config: Mapping[str, Any] | None, durability: str | None = None,
        interrupt_before: Any = None, interrupt_after: Any = None, sync: bool = False,
    ) -> dict[str, Any] | None:
        """A call's config with the graph's own (`with_config`) under it, and the call's
        `durability` ("sync", "async": each step in the history as it is made, which is what
        arqgraph does for both; "exit": only the checkpoint the run ends at). A `sync` call
        (`invoke`, `stream`) says so to the workers: as in LangGraph, runnables that are
        nodes then run their sync body."""
        configurable = (config or {}).get("configurable") or {}
        if sync:
            config = merge_configs(config, {"configurable": {CONFIG_KEY_SYNC: True}})
        elif CONFIG_KEY_SYNC in configurable:  # (an async call inside a sync run's node)
            config = {**(config or {}), "configurable": {
                k: v for k, v in configurable.items() if k != CONFIG_KEY_SYNC}}
        if durability is not None:
            if durability not in ("sync", "async", "exit"):
                raise ValueError(f"durability must be 'sync', 'async' or 'exit', got {durability!r}")
            config = merge_configs(config, {"configurable": {CONFIG_KEY_DURABILITY: durability}})
        if self.step_timeout:  # (set on the graph, read by the workers: sent with the run)
            config = merge_configs(config, {"configurable": {
                CONFIG_KEY_STEP_TIMEOUT: float(self.step_timeout)}})
        for key, nodes in ((CONFIG_KEY_INTERRUPT_BEFORE, interrupt_before),
                           (CONFIG_KEY_INTERRUPT_AFTER, interrupt_after)):
            if nodes is not None:  # this run's breakpoints, in place of the graph's
                config = merge_configs(config, {"configurable": {
                    key: "*" if nodes == "*" else list(nodes)}})
        if self.config is not None:
            return merge_configs(self.config, config)
        return None if config is None else dict(config)

    def _check_call(self, input: Any, context: Any) -> None:
        """Invalid input or context raise pydantic's ValidationError here, in the caller, as in
        LangGraph; they are sent as given (the workers coerce the context for their nodes)."""
        check_input(self.input_schema, input)
        coerce_context(self.context_schema, context)


async def _each(events: Any) -> AsyncGenerator[tuple[tuple[str, ...], str, Any], None]:
    """The events of a list or of an async iterator, in turn."""
    if isinstance(events, list):
        for event in events:
            yield event
        return
    async with contextlib.aclosing(events):
        async for event in events:
            yield event


def _embedded_store(checkpointer: Any) -> Any:
    """The store that keeps this graph's threads when it runs embedded: the saver's own
    in-memory store, or one of its own for a checkpointer of another kind (LangGraph's)."""
    if checkpointer is None or checkpointer is False:
        return None
    from arqgraph.checkpoint.memory import InMemorySaver

    return checkpointer if isinstance(checkpointer, InMemorySaver) else InMemorySaver()


def _with_defaults(spec: NodeSpec, defaults: dict[str, Any]) -> NodeSpec:
    """A node with the graph's default policies where it sets none of its own."""
    unset = {k: v for k, v in defaults.items() if getattr(spec, k) is None}
    return replace(spec, **unset) if unset else spec
