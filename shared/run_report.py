"""LangChain callbacks given in a run's config (`{"callbacks": [handler]}`: LangSmith, Langfuse
and other tracers) hear the run from the process that runs it, embedded or as the producer of a
cluster run: one chain run for the graph, started with its input and ended with its output
(an interrupted run's state, without its interrupts) or its error, as LangGraph reports it;
and `arqgraph.callbacks.GraphCallbackHandler`s hear its resume and interrupt.

Handlers are objects of that process: they never cross the wire, so the config a run carries
to the workers has no `callbacks` (nor `run_id`, which names the reported run). Runs of the
graph's nodes, and of subgraphs, which happen on workers, are not reported to them.
"""

from __future__ import annotations

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
