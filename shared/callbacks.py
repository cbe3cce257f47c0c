"""LangChain callbacks given in a run's config (`{"callbacks": [handler]}`: LangSmith, Langfuse
and other tracers) hear the run from the process that runs it, embedded or as the producer of a
cluster run: one chain run for the graph, started with its input and ended with its output
(an interrupted run's state, without its interrupts) or its error, as LangGraph reports it.

Handlers are objects of that process: they never cross the wire, so the config a run carries
to the workers has no `callbacks` (nor `run_id`, which names the reported run). Runs of the
graph's nodes, which happen on workers, are not reported to them.
"""

from __future__ import annotations

from typing import Any

WIRE_EXCLUDED = ("callbacks", "run_id")


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
        return wire, cls(run)

    async def end(self, output: Any) -> None:
        if isinstance(output, dict) and "__interrupt__" in output:
            output = {k: v for k, v in output.items() if k != "__interrupt__"}
        await self._run.on_chain_end(output)

    async def error(self, exc: BaseException) -> None:
        await self._run.on_chain_error(exc)
