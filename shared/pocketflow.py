"""PocketFlow flows on the cluster: `flow_graph(flow, name=...)` makes a PocketFlow `Flow` (or any
of its variants, from the `pocketflow` package or classes of the same shape) a graph that the
orchestrator and workers serve like any other.

    graph = flow_graph(AsyncFlow(start=fetch), name="recipes")
    final_shared = await graph.ainvoke({"user_ingredient": "chicken"})
    action = await graph.run_async(shared)     # as `flow.run_async(shared)`: the last action

How it maps (written to PocketFlow's own behaviour, checked by tests/test_pocketflow_faithful.py
against the `pocketflow` package):
- The flow's shared store is the run's state; the whole flow runs on one worker, as PocketFlow
  runs it in one process. Every node runs through its own methods (`_run`, `_run_async`, so
  `prep`/`exec`/`post`, retries with `wait`, `exec_fallback`, `cur_retry`, batch and parallel
  batch order, attributes set on `self` between `prep` and `post`); flows are walked here, with
  PocketFlow's rules (`get_next_node`, params, copies of nodes, nested flows returning their last
  action to route the outer flow), so each node's changes can be streamed.
- `run`/`run_async` return the flow's last action (its `post`'s return value) and update the
  caller's dict in place; `invoke`/`ainvoke` return the final store.
- Warnings raised while the flow runs (a node's, PocketFlow's "Flow ends" ...) are recorded on
  the worker and raised again in the caller, under the caller's warning filters.
- Each node's changes to the store are streamed as `custom` events
  `{"node": name, "set": {...}, "deleted": [...]}`; warnings as `{"warning": text, "category":
  "module.Class"}`, and the flow's last action as `{"action": action}` at the end. (A value
  that cannot be sent is left out of its event, its key listed under "unsendable".)
- The final store must be msgpack-able (it crosses the network): a value that is not fails the
  run at once, naming the key and the type.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import copy
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from arqgraph.config import get_stream_writer
from arqgraph.core import codec
from arqgraph.errors import SerializationError
from arqgraph.func import Entrypoint

__all__ = ["FlowGraph", "flow_graph"]


def flow_graph(flow: Any, *, name: str, checkpointer: Any = None) -> FlowGraph:
    """A graph that runs `flow`: invoke it with the initial shared store; it returns the final
    one (`run`/`run_async` return the flow's last action, as PocketFlow's)."""

    async def walk(shared: dict[str, Any]) -> dict[str, Any]:
        store = dict(shared or {})
        recorded: list[dict[str, str]] = []
        walker = _Walker(recorded)
        token = _RECORDING.set(recorded)
        try:
            action = await walker.top(flow, store)
        finally:
            _RECORDING.reset(token)
            walker.flush()
        _check_sendable(store)
        get_stream_writer()({"action": action})
        return store

    walk.__module__, walk.__qualname__ = type(flow).__module__, f"{name}.flow"
    return FlowGraph(walk, checkpointer=checkpointer, name=name)


class FlowGraph(Entrypoint):
    """A PocketFlow flow as a graph: `invoke`/`ainvoke` give the final store, `run`/`run_async`
    the flow's last action; both raise the flow's warnings in the caller."""

    async def run_async(self, shared: dict[str, Any], config: dict[str, Any] | None = None,
                        **kwargs: Any) -> Any:
        """As PocketFlow's `flow.run_async(shared)`: `shared` is updated in place and the
        flow's last action returned."""
        action, final = await self._walk(shared, config, **kwargs)
        shared.clear()
        shared.update(final)
        return action

    def run(self, shared: dict[str, Any], config: dict[str, Any] | None = None,
            **kwargs: Any) -> Any:
        """As PocketFlow's `flow.run(shared)`."""
        from arqgraph.embedded import run_sync

        return run_sync(self.run_async(shared, config, **kwargs))

    async def ainvoke(self, input: Any, config: Mapping[str, Any] | None = None, *,
                      stream_mode: str = "values", **kwargs: Any) -> Any:
        if stream_mode != "values":
            return await super().ainvoke(input, config, stream_mode=stream_mode, **kwargs)
        return (await self._walk(input, config, **kwargs))[1]

    async def _walk(self, shared: Any, config: Mapping[str, Any] | None,
                    **kwargs: Any) -> tuple[Any, Any]:
        action, final = None, None
        async for mode, chunk in self.astream(shared, config, stream_mode=["custom", "values"],
                                              **kwargs):
            if mode == "values":
                final = chunk
            elif isinstance(chunk, dict) and "warning" in chunk:
                warnings.warn(chunk["warning"], _category(chunk.get("category", "")),
                              stacklevel=3)
            elif isinstance(chunk, dict) and "action" in chunk:
                action = chunk["action"]
        return action, final


class _Walker:
    """PocketFlow's flow orchestration (`_orch_async`, the flows' `_run_async`) with each node
    run by its own code; sync flows (and nodes) run whole in a thread, as `flow.run` would."""

    def __init__(self, recorded: list[dict[str, str]]) -> None:
        self.recorded = recorded

    async def top(self, flow: Any, shared: dict[str, Any]) -> Any:
        if not _is(flow, "AsyncNode"):
            return await self._sync(flow, shared, flow.run)
        if flow.successors:
            warnings.warn("Node won't run successors. Use AsyncFlow.", stacklevel=2)
        return await self.run(flow, shared)

    async def run(self, node: Any, shared: dict[str, Any]) -> Any:
        """`node._run_async(shared)`, walking async flows here so their nodes are reported."""
        if not _is(node, "AsyncNode"):
            return await self._sync(node, shared, node._run)
        if not hasattr(node, "start_node"):
            before = copy.deepcopy(shared)
            action = await node._run_async(shared)
            self.report(node, before, shared)
            return action
        prep = await node.prep_async(shared)
        if not _is(node, "BatchFlow"):
            return await node.post_async(shared, prep, await self._orch(node, shared, None))
        params = prep or []
        branches = [self._orch(node, shared, {**node.params, **bp}) for bp in params]
        if _is(node, "AsyncParallelBatchFlow"):
            await asyncio.gather(*branches)
        else:
            for branch in branches:
                await branch
        return await node.post_async(shared, params, None)

    async def _orch(self, flow: Any, shared: dict[str, Any], params: dict[str, Any] | None) -> Any:
        current, p, last = copy.copy(flow.start_node), (params or {**flow.params}), None
        while current:
            current.set_params(p)
            last = await self.run(current, shared)
            current = copy.copy(flow.get_next_node(current, last))
        return last

    async def _sync(self, node: Any, shared: dict[str, Any], method: Any) -> Any:
        """A sync node or flow, run whole by its own code in a thread (in PocketFlow it blocks
        its caller; here it must not block the worker's event loop)."""
        before = copy.deepcopy(shared)
        action = await asyncio.to_thread(method, shared)
        self.report(node, before, shared)
        return action

    def report(self, node: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Stream the node's changes to the store, and the warnings recorded so far."""
        changed = {k: v for k, v in after.items() if k not in before or before[k] != v}
        deleted = sorted(k for k in before if k not in after)
        if changed or deleted:
            event = {"node": type(node).__name__, "deleted": deleted,
                     "set": {k: v for k, v in changed.items() if _sendable(v)}}
            if len(event["set"]) < len(changed):  # kept in the store; only the end must travel
                event["unsendable"] = sorted(set(changed) - set(event["set"]))
            get_stream_writer()(event)
        self.flush()

    def flush(self) -> None:
        writer = get_stream_writer()
        while self.recorded:
            writer(self.recorded.pop(0))


def _is(node: Any, *class_names: str) -> bool:
    return any(c.__name__ in class_names for c in type(node).__mro__)


def _sendable(value: Any) -> bool:
    try:
        codec.packb(value)
    except SerializationError:
        return False
    return True


def _check_sendable(store: dict[str, Any]) -> None:
    """The final store travels back to the caller: fail naming the first key that cannot."""
    for key, value in store.items():
        try:
            codec.packb(value)
        except SerializationError as exc:
            raise SerializationError(
                f"the flow's final shared store cannot be sent back: key {key!r}: {exc}"
            ) from None


# -- warnings: recorded while a flow runs, raised again in the caller ---------------------------

_RECORDING: contextvars.ContextVar[list[dict[str, str]] | None] = contextvars.ContextVar(
    "arqgraph_pocketflow_warnings", default=None)
_warn = warnings.warn


def _recording_warn(message: Any, category: Any = None, stacklevel: int = 1,
                    source: Any = None, **kwargs: Any) -> None:
    """`warnings.warn`, except inside a flow's run: there the warning is kept for the caller,
    whatever this process's filters say (the caller's filters decide, as in one process)."""
    recorded = _RECORDING.get()
    if recorded is None:
        return _warn(message, category, stacklevel + 1, source, **kwargs)
    if isinstance(message, Warning):
        category = type(message)
    category = category or UserWarning
    recorded.append({"warning": str(message),
                     "category": f"{category.__module__}.{category.__qualname__}"})
    return None


warnings.warn = _recording_warn


def _category(name: str) -> type[Warning]:
    """The warning class named `module.Class`, if this process has it loaded (nothing is
    imported because a message says so); UserWarning otherwise."""
    module_name, _, qualname = name.rpartition(".")
    found: Any = builtins if module_name == "builtins" else sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, Warning):
        return found
    return UserWarning
