"""LangChain callbacks given in a run's config (`{"callbacks": [handler]}`: LangSmith, Langfuse
and other tracers) hear the run from the process that runs it, embedded or as the producer of a
cluster run: one chain run for the graph, started with its input and ended with its output
(an interrupted run's state, without its interrupts) or its error, as LangGraph reports it;
and `arqgraph.callbacks.GraphCallbackHandler`s hear its resume and interrupt.

Handlers are objects of that process: they never cross the wire, so the config a run carries
to the workers has no `callbacks` (nor `run_id`, which names the reported run). Runs of the
graph's nodes happen on workers: they are reported afterwards, from the "tasks" events the
workers record for a run that has callbacks (subgraphs' nodes are not).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from arqgraph.types import Command

if TYPE_CHECKING:
    from arqgraph.callbacks import _AsyncGraphCallbackManager

WIRE_EXCLUDED = ("callbacks", "run_id")


class GraphRun:
    """The chain run of one graph run, and its lifecycle, reported to the config's callbacks."""

    def __init__(self, run_manager: Any, graph: _AsyncGraphCallbackManager) -> None:
        self._run = run_manager
        self.graph = graph

    @classmethod
    async def start(
        cls, config: dict[str, Any] | None, input: Any, name: str
    ) -> tuple[dict[str, Any] | None, GraphRun | None]:
        """The config to send with the run, and its report to the callbacks (None without)."""
        if not config or not any(key in config for key in WIRE_EXCLUDED):
            return config, None
        wire = {k: v for k, v in config.items() if k not in WIRE_EXCLUDED}
        callbacks = config.get("callbacks")
        if not callbacks:
            return wire, None
        from langchain_core.callbacks.manager import AsyncCallbackManager

        manager = AsyncCallbackManager.configure(
            inheritable_callbacks=callbacks, inheritable_tags=config.get("tags"),
            inheritable_metadata=config.get("metadata"),
        )
        run = await manager.on_chain_start(
            None, input, name=config.get("run_name", name), run_id=config.get("run_id")
        )
        from arqgraph.callbacks import get_async_graph_callback_manager_for_config

        graph = get_async_graph_callback_manager_for_config(config, run_id=run.run_id)
        return wire, cls(run, graph)

    @staticmethod
    def resumes(input: Any) -> bool:
        """Whether a run with this input goes on from its thread's checkpoint, as LangGraph
        tells it (None or a Command; LangGraph also wants the thread to have one)."""
        return input is None or isinstance(input, Command)

    async def resumed(self, checkpoint_id: str | None) -> None:
        """The run goes on from the thread's checkpoint `checkpoint_id` (None: it has none)."""
        from arqgraph.callbacks import GraphResumeEvent

        if checkpoint_id and self.graph.handlers:
            await self.graph.on_resume(GraphResumeEvent(
                run_id=self.graph.run_id, status="pending", checkpoint_id=checkpoint_id,
                checkpoint_ns=()))

    async def end(self, output: Any, end: dict[str, Any] | None = None) -> None:
        """The run ended with `output`; `end`, its end event, says whether it was interrupted."""
        if end is not None and end.get("status") == "interrupted" and not end.get("drained"):
            await self._interrupted(output, end)
        if isinstance(output, dict) and "__interrupt__" in output:
            output = {k: v for k, v in output.items() if k != "__interrupt__"}
        await self._run.on_chain_end(output)

    async def _interrupted(self, output: Any, end: dict[str, Any]) -> None:
        if not self.graph.handlers:
            return
        from arqgraph.callbacks import GraphInterruptEvent

        asked = output.get("__interrupt__", ()) if isinstance(output, dict) else ()
        await self.graph.on_interrupt(GraphInterruptEvent(
            run_id=self.graph.run_id, status=end.get("loop_status") or "pending",
            checkpoint_id=str(end.get("checkpoint_id") or ""), checkpoint_ns=(),
            interrupts=tuple(asked)))

    async def error(self, exc: BaseException) -> None:
        await self._run.on_chain_error(exc)

    async def nodes(self, events: AsyncIterator[tuple[str, Any]],
                    failure: BaseException | None = None, entrypoint: bool = False) -> None:
        """Report the runs of the graph's nodes, child runs of the graph's, from the "tasks"
        events its workers recorded (its start, then its writes, error or interrupts): the
        handlers are not where the nodes ran. A node's TracePolicy gave what tracers record
        instead (the events' `traced`); `failure` is the run's error, its failed node's. The
        runs of the task calls an entrypoint made ("calls" events) are its node's children."""
        running: dict[str, Any] = {}
        async for mode, event in events:
            if mode == "calls" and isinstance(event, dict):
                await _called(running.get(str(event["id"]).partition("/fn/")[0]), event)
            if mode != "tasks" or not isinstance(event, dict):
                continue
            payload = event["payload"]
            if "input" in payload:
                child = self._run.get_child(f"graph:step:{event['step']}")
                child.add_metadata({"langgraph_step": event["step"],
                                    "langgraph_node": payload["name"],
                                    "langgraph_triggers": tuple(payload.get("triggers") or ())},
                                   inherit=False)
                running[payload["id"]] = await _started(child, payload, event)
            elif (run := running.pop(payload["id"], None)) is not None:
                if entrypoint and isinstance(payload.get("result"), dict):  # (its value only)
                    payload = {**payload, "result": {"output": payload["result"].get("output")}}
                await _ended(run, payload, event, failure)


async def _started(manager: Any, payload: dict[str, Any], event: dict[str, Any]) -> Any:
    """Start a node's run: tracers record its TracePolicy's input, if it made one."""
    name, value = payload["name"], payload["input"]
    if "traced" not in event:
        return await manager.on_chain_start(None, value, name=name)
    real, tracers = _split(manager)
    run = await real.on_chain_start(None, value, name=name)
    await tracers.on_chain_start(None, event["traced"], name=name, run_id=run.run_id)
    run.handlers = manager.handlers
    return run


async def _ended(run: Any, payload: dict[str, Any], event: dict[str, Any],
                 failure: BaseException | None) -> None:
    """End a node's run with its writes, its error or its interrupts (as LangGraph's, a
    GraphInterrupt)."""
    from arqgraph.errors import GraphInterrupt
    from arqgraph.types import Interrupt

    if payload.get("interrupts"):
        asked = [Interrupt(**i) for i in payload["interrupts"]]
        await run.on_chain_error(GraphInterrupt(asked))
    elif payload.get("error") is not None:
        await run.on_chain_error(failure or RuntimeError(payload["error"]))
    elif "traced" in event:
        real, tracers = _split(run)
        await tracers.on_chain_end(event["traced"])
        await real.on_chain_end(payload.get("result"))
    else:
        await run.on_chain_end(payload.get("result"))


async def _called(caller: Any, event: dict[str, Any]) -> None:
    """Report a task call's run, a child of the run of the node that called it."""
    if caller is None:
        return
    run = await caller.get_child("seq:step:1").on_chain_start(None, event["input"],
                                                              name=event["name"])
    if "error" in event:
        from arqgraph import protocol

        await run.on_chain_error(protocol.rebuild_error(protocol.decode_error(event["error"])))
    else:
        await run.on_chain_end({"output": event["output"]})


def _split(manager: Any) -> tuple[Any, Any]:
    """Copies of `manager` with its tracers only, and with its other handlers (streaming
    tracers count as others: they feed the caller's stream), as LangGraph splits them."""
    from langchain_core.tracers.base import BaseTracer

    def tracer(h: Any) -> bool:
        return isinstance(h, BaseTracer) and not any(
            c.__name__ == "_StreamingCallbackHandler" for c in type(h).__mro__)

    real, tracers = copy.copy(manager), copy.copy(manager)
    tracers.handlers = [h for h in manager.handlers if tracer(h)]
    real.handlers = [h for h in manager.handlers if not tracer(h)]
    return real, tracers
