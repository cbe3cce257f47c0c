"""PocketFlow flows on the cluster: `flow_graph(flow, name=...)` makes a PocketFlow `Flow` (or any
of its variants, from the `pocketflow` package or classes of the same shape) a graph that the
orchestrator and workers serve like any other.

    graph = flow_graph(AsyncFlow(start=fetch), name="recipes")
    final_shared = await graph.ainvoke({"user_ingredient": "chicken"})

How it maps:
- The flow's shared store is the run's state. The flow is walked on a worker (one node of the
  graph), with PocketFlow's own rules: the action `post` returns picks the successor (None means
  "default"; an action with no successor ends the flow), nested flows and flow params work as in
  PocketFlow, batch flows run their sub-flow once per parameter set (the parallel variant runs
  them at once, each branch advancing on its own).
- `prep` and `post` run there, against the store; every node's `exec` is a job of its own
  (`arqgraph.func` task calls), possibly on another worker; for batch nodes each item's `exec` is
  its own job (all at once for the parallel variants) and `post` gets the results in input order.
- Only `exec` is retried: `max_retries` attempts, `wait` seconds apart, each a new job attempt
  (no worker slot held while waiting); `cur_retry` is set on each; `exec_fallback` runs on the
  worker after the last. Finished `exec` results are saved with the run, so a flow walked again
  (its worker died) does not run them again.
- What crosses the network must be msgpack-able: a `prep` result (or batch item) that is not
  fails at once, naming the node and the type. `exec` runs on a copy of the node on another
  process: what it sets on `self` is not seen by `post` (pass it in the return value instead).
- Each node's changes to the store are streamed as `custom` events
  `{"node": name, "set": {...}, "deleted": [...]}`.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import warnings
from collections.abc import Iterator
from typing import Any, TypedDict

from arqgraph.config import get_stream_writer
from arqgraph.core import codec
from arqgraph.errors import SerializationError
from arqgraph.func import Entrypoint, RetryLater, current_attempt, task

FLOWS: dict[str, dict[str, Any]] = {}
"""The nodes of every flow graph of the loaded modules, by graph name and node id."""


class FlowState(TypedDict, total=False):
    input: Any
    output: Any


def flow_graph(flow: Any, *, name: str, checkpointer: Any = None) -> Entrypoint:
    """A graph that runs `flow`: invoke it with the initial shared store; it returns the final
    one."""
    nodes = dict(_index(flow))
    FLOWS[name] = nodes

    async def walk(shared: dict[str, Any]) -> dict[str, Any]:
        store = dict(shared or {})
        await _Walker(name, {id(n.successors): i for i, n in nodes.items()}).run(flow, store, {})
        return store

    walk.__module__, walk.__qualname__ = type(flow).__module__, f"{name}.flow"
    return Entrypoint(walk, checkpointer=checkpointer, name=name)


def _index(flow: Any) -> Iterator[tuple[str, Any]]:
    """Every node reachable from `flow` (successors, nested flows' start nodes), with a stable
    id: the order of discovery and the class name."""
    seen: set[int] = set()
    pending = [flow]
    while pending:
        node = pending.pop(0)
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield f"{len(seen) - 1}:{type(node).__name__}", node
        start = getattr(node, "start_node", None)
        pending += ([start] if start is not None else []) + list(node.successors.values())


def _is(node: Any, *class_names: str) -> bool:
    return any(c.__name__ in class_names for c in type(node).__mro__)


async def _call(obj: Any, sync_name: str, *args: Any) -> Any:
    """A lifecycle method: `<name>_async` on async nodes, else `<name>` (in a thread)."""
    if _is(obj, "AsyncNode") and hasattr(obj, f"{sync_name}_async"):
        return await getattr(obj, f"{sync_name}_async")(*args)
    return await asyncio.to_thread(getattr(obj, sync_name), *args)


class _Walker:
    """PocketFlow's orchestration (`_run`, `_orch`), with each `exec` sent out as a job."""

    def __init__(self, graph: str, ids: dict[int, str]) -> None:
        self.graph = graph
        self.ids = ids

    async def run(self, node: Any, shared: dict[str, Any], params: dict[str, Any]) -> Any:
        if hasattr(node, "start_node"):
            return await self._flow(node, shared)
        prep = await _call(node, "prep", shared)
        before = copy.deepcopy(shared)
        if _is(node, "BatchNode"):
            items = list(prep or [])
            for item in items:
                self._check(node, item)
            calls = [self._exec(node, item, params) for item in items]
            if _is(node, "AsyncParallelBatchNode"):
                result: Any = list(await asyncio.gather(*calls))
            else:
                result = [await c for c in calls]
        else:
            self._check(node, prep)
            result = await self._exec(node, prep, params)
        action = await _call(node, "post", shared, prep, result)
        self._report(node, before, shared)
        return action

    async def _flow(self, flow: Any, shared: dict[str, Any]) -> Any:
        prep = await _call(flow, "prep", shared)
        if _is(flow, "BatchFlow"):
            branches = [self._orch(flow, shared, {**flow.params, **bp}) for bp in (prep or [])]
            if _is(flow, "AsyncParallelBatchFlow"):
                await asyncio.gather(*branches)
            else:
                for branch in branches:
                    await branch
            return await _call(flow, "post", shared, prep, None)
        return await _call(flow, "post", shared, prep, await self._orch(flow, shared, None))

    async def _orch(self, flow: Any, shared: dict[str, Any], params: dict[str, Any] | None) -> Any:
        current = copy.copy(flow.start_node)
        params = params or {**flow.params}
        last = None
        while current is not None:
            current.set_params(params)
            last = await self.run(current, shared, params)
            current = copy.copy(_next(current, last))
        return last

    async def _exec(self, node: Any, prep: Any, params: dict[str, Any]) -> Any:
        # Nodes are walked as copies, as PocketFlow does; a copy shares its successors dict.
        return await exec_node(self.graph, self.ids[id(node.successors)], params, prep)

    @staticmethod
    def _check(node: Any, value: Any) -> None:
        _sendable(node, "prep", value)

    @staticmethod
    def _report(node: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
        changed = {k: v for k, v in after.items() if k not in before or before[k] != v}
        deleted = sorted(k for k in before if k not in after)
        if changed or deleted:
            get_stream_writer()({"node": type(node).__name__, "set": changed, "deleted": deleted})


def _next(node: Any, action: Any) -> Any:
    successor = node.successors.get(action or "default")
    if successor is None and node.successors:
        warnings.warn(f"Flow ends: '{action}' not found in {list(node.successors)}", stacklevel=2)
    return successor


@task(name="exec")
async def exec_node(graph: str, node_id: str, params: dict[str, Any], prep: Any) -> Any:
    """One attempt at a node's `exec`, on a worker: a copy of the node, its params set, and
    `cur_retry` telling which attempt this is; the last failed attempt runs `exec_fallback`."""
    node = copy.copy(FLOWS[graph][node_id])
    node.set_params(params)
    attempt = current_attempt.get()
    node.cur_retry = attempt - 1
    is_async = _is(node, "AsyncNode")
    try:
        if is_async:
            result = await node.exec_async(prep)
        else:
            result = await asyncio.to_thread(node.exec, prep)
        _sendable(node, "exec", result)  # (a result that cannot be sent back fails the attempt)
        return result
    except Exception as exc:
        if attempt < getattr(node, "max_retries", 1):
            raise RetryLater(getattr(node, "wait", 0) or 0.0, exc) from exc
        if is_async:
            return _sendable(node, "exec_fallback", await node.exec_fallback_async(prep, exc))
        fallback = node.exec_fallback(prep, exc)
        return _sendable(node, "exec_fallback",
                         await fallback if inspect.isawaitable(fallback) else fallback)


def _sendable(node: Any, method: str, value: Any) -> Any:
    """`value`, which the node's `method` returned, if it can be sent back to the flow."""
    try:
        codec.packb(value)
    except SerializationError as exc:
        raise SerializationError(
            f"{method} of node {type(node).__name__} returned a {type(value).__name__} that "
            f"cannot cross the network (between the flow and the worker running exec): {exc}"
        ) from None
    return value
