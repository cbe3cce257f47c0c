"""LangChain callbacks given in a run's config (`{"callbacks": [handler]}`: LangSmith, Langfuse
and other tracers) hear the run from the process that runs it, embedded or as the producer of a
cluster run: one chain run for the graph, started with its input and ended with its output
(an interrupted run's state, without its interrupts) or its error, as LangGraph reports it.

Handlers are objects of that process: they never cross the wire, so the config a run carries
to the workers has no `callbacks` (nor `run_id`, which names the reported run). It asks them
instead to record their nodes' callbacks (`arqgraph.workers.node_callbacks`): each node as a
chain run under the graph's, with the model, tool and retriever runs it makes, which this
process replays to the handlers as the run's events arrive, in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from arqgraph.constants import CONF, CONFIG_KEY_CALLBACKS
from arqgraph.protocol.callbacks import decode_callback

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


class GraphRun:
    """The chain run of one graph run, reported to the config's callbacks."""

    def __init__(self, run_manager: Any) -> None:
        self._run = run_manager

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
        streaming = any(hasattr(h, "tap_output_aiter") for h in run.inheritable_handlers)
        wire[CONF] = {**(wire.get(CONF) or {}),
                      CONFIG_KEY_CALLBACKS: {"parent": str(run.run_id), "stream": streaming}}
        return wire, cls(run)

    async def replay(self, event: dict[str, Any]) -> None:
        """Tell the handlers a callback a node's run made on a worker."""
        from langchain_core.callbacks.manager import ahandle_event

        method, args, kwargs = decode_callback(event)
        handlers = self._run.inheritable_handlers
        if method == STREAM:
            for handler in handlers:
                if hasattr(handler, "tap_output_aiter"):
                    async for _ in handler.tap_output_aiter(kwargs["run_id"],
                                                            _once(kwargs["chunk"])):
                        pass
            return
        await ahandle_event(handlers, method, IGNORED_BY.get(method), *args, **kwargs)

    async def end(self, output: Any) -> None:
        if isinstance(output, dict) and "__interrupt__" in output:
            output = {k: v for k, v in output.items() if k != "__interrupt__"}
        await self._run.on_chain_end(output)

    async def error(self, exc: BaseException) -> None:
        await self._run.on_chain_error(exc)


async def _once(value: Any) -> AsyncIterator[Any]:
    yield value


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
