"""LangChain callbacks given in a run's config (`{"callbacks": [handler]}`: LangSmith, Langfuse
and other tracers) hear the run from the process that runs it, embedded or as the producer of a
cluster run: one chain run for the graph, started with its input and ended with its output
(an interrupted run's state, without its interrupts) or its error, as LangGraph reports it;
and `arqgraph.callbacks.GraphCallbackHandler`s hear its resume and interrupt.

Handlers are objects of that process: they never cross the wire, so the config a run carries
to the workers has no `callbacks` (nor `run_id`, which names the reported run). It asks them
instead to record their nodes' callbacks (`arqgraph.workers.node_callbacks`): each node as a
chain run under the graph's, with the model, tool and retriever runs it makes, and the runs of
an entrypoint's task calls ("calls" events), which this process replays to the handlers as the
run's events arrive, in order. A node's TracePolicy gave what tracers record of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from arqgraph.constants import CONF, CONFIG_KEY_CALLBACKS
from arqgraph.protocol.callbacks import decode_callback
from arqgraph.types import Command

if TYPE_CHECKING:
    from arqgraph.callbacks import _AsyncGraphCallbackManager

WIRE_EXCLUDED = ("callbacks", "run_id")
STREAM = "__chain_stream__"  # a chain run's output chunk, for streaming handlers
IGNORED_BY = {  # the handler flag that turns a callback off, as LangChain's managers read it
    "on_chain_start": "ignore_chain", "on_chain_end": "ignore_chain",
    "on_chain_error": "ignore_chain", "on_llm_start": "ignore_llm",
    "on_llm_new_token": "ignore_llm", "on_llm_end": "ignore_llm", "on_llm_error": "ignore_llm",
    "on_chat_model_start": "ignore_chat_model", "on_tool_start": "ignore_agent",
    "on_tool_end": "ignore_agent", "on_tool_error": "ignore_agent",
    "on_agent_action": "ignore_agent", "on_agent_finish": "ignore_agent",
    "on_retriever_start": "ignore_retriever", "on_retriever_end": "ignore_retriever",
    "on_retriever_error": "ignore_retriever", "on_retry": "ignore_retry",
    "on_custom_event": "ignore_custom_event",
}
TASK, TRACED = "__arqgraph_task", "__arqgraph_traced"  # (a node run's task; its TracePolicy's)


class GraphRun:
    """The chain run of one graph run, and its lifecycle, reported to the config's callbacks."""

    def __init__(self, run_manager: Any, graph: _AsyncGraphCallbackManager) -> None:
        self._run = run_manager
        self.graph = graph
        self.node_runs: dict[str, Any] = {}  # task id: the run id of its node
        self.traced_inputs: dict[Any, Any] = {}  # node run: its input as tracers record it

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
            inheritable_metadata={**(config.get("metadata") or {}),
                                  "ls_integration": "langgraph"},  # (as LangGraph names it)
        )
        run = await manager.on_chain_start(
            None, input, name=config.get("run_name", name), run_id=config.get("run_id")
        )
        from arqgraph.callbacks import get_async_graph_callback_manager_for_config

        graph = get_async_graph_callback_manager_for_config(config, run_id=run.run_id)
        streaming = any(_streams(h) for h in run.inheritable_handlers)
        wire[CONF] = {**(wire.get(CONF) or {}),
                      CONFIG_KEY_CALLBACKS: {"parent": str(run.run_id), "stream": streaming}}
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

    async def replay(self, mode: str, event: dict[str, Any]) -> None:
        """Tell the handlers a callback a node's run made on a worker ("callbacks"), or the
        run of a task call an entrypoint made ("calls")."""
        if mode == "calls":
            await self._called(event)
            return
        from langchain_core.callbacks.manager import ahandle_event

        method, args, kwargs = decode_callback(event)
        handlers = self._run.inheritable_handlers
        if (task := kwargs.pop(TASK, None)) is not None:
            self.node_runs[str(task)] = kwargs["run_id"]
        if method == STREAM:
            for handler in handlers:
                if _streams(handler):
                    async for _ in handler.tap_output_aiter(kwargs["run_id"],
                                                            _once(kwargs["chunk"])):
                        pass
            return
        traced = kwargs.pop(TRACED, None)
        if method == "on_chain_start" and traced is not None:
            self.traced_inputs[kwargs["run_id"]] = traced
        traced_input = self.traced_inputs.pop(kwargs["run_id"], None) if method in (
            "on_chain_end", "on_chain_error") else None
        if traced is None and traced_input is None:
            await ahandle_event(handlers, method, IGNORED_BY.get(method), *args, **kwargs)
            return
        # tracers record what the node's TracePolicy gave; the other handlers the real values
        tracers = _tracers(handlers)
        ignore = IGNORED_BY.get(method)
        await ahandle_event([h for h in handlers if h not in tracers], method, ignore, *args,
                            **kwargs)
        if method == "on_chain_start":  # (serialized, inputs)
            await ahandle_event(tracers, method, ignore, args[0], traced, *args[2:], **kwargs)
            return
        if traced_input is not None and "inputs" in kwargs:
            kwargs = {**kwargs, "inputs": traced_input}
        outputs = traced if traced is not None else args[0]
        await ahandle_event(tracers, method, ignore, outputs, *args[1:], **kwargs)

    async def _called(self, event: dict[str, Any]) -> None:
        """Report a task call's run, a child of the run of the node that called it."""
        from langchain_core.callbacks.manager import AsyncCallbackManager

        parent = self.node_runs.get(str(event["id"]).partition("/fn/")[0])
        if parent is None:
            return
        handlers = list(self._run.inheritable_handlers)
        manager = AsyncCallbackManager(handlers=handlers, parent_run_id=parent,
                                       tags=["seq:step:1"], metadata=event.get("metadata") or {})
        run = await manager.on_chain_start(None, event["input"], name=event["name"])
        if "error" in event:
            from arqgraph import protocol

            await run.on_chain_error(protocol.rebuild_error(protocol.decode_error(event["error"])))
            return
        for handler in handlers:  # (its return value streamed, as LangGraph's task streams it)
            if _streams(handler):
                async for _ in handler.tap_output_aiter(run.run_id, _once(event["output"])):
                    pass
        await run.on_chain_end(event["output"])


async def _once(value: Any) -> AsyncIterator[Any]:
    yield value


def _streams(handler: Any) -> bool:
    """Whether a handler taps a run's streamed output: as LangGraph tells it, by inheriting
    LangChain's streaming handler class, not by merely having the tap methods."""
    return any(c.__name__ == "_StreamingCallbackHandler" for c in type(handler).__mro__)


def _tracers(handlers: list[Any]) -> list[Any]:
    """The handlers that are tracers (not streaming ones, which feed the caller's stream)."""
    from langchain_core.tracers.base import BaseTracer

    return [h for h in handlers if isinstance(h, BaseTracer) and not _streams(h)]


async def subgraph_run(config: dict[str, Any], input: Any, name: str) -> tuple[
        dict[str, Any], Any]:
    """A subgraph's own chain run, under the node that runs it, when the node's runs are
    reported (its callbacks hold the recorder): the config for the subgraph, whose nodes then
    report under it, and the run to end (None when nothing is reported)."""
    wanted = (config.get(CONF) or {}).get(CONFIG_KEY_CALLBACKS)
    if not config.get("callbacks") or not isinstance(wanted, dict):
        return config, None
    from langchain_core.callbacks.manager import AsyncCallbackManager

    manager = AsyncCallbackManager.configure(
        inheritable_callbacks=config["callbacks"], inheritable_tags=config.get("tags"),
        inheritable_metadata=config.get("metadata"))
    run = await manager.on_chain_start(None, input, name=name)
    inner = {**wanted, "parent": str(run.run_id)}
    return {**config, CONF: {**config[CONF], CONFIG_KEY_CALLBACKS: inner}}, run
