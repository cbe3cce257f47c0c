"""One submitted run as its producer holds it: its events, its result, its status, a cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from arqgraph.core.schema import ROOT
from arqgraph.protocol import FINAL_STATUSES
from arqgraph.storage import run_events
from arqgraph.storage.connection import lost_redis
from arqgraph.storage.ends import EndWatch
from arqgraph.storage.runs import RunStore


class RunHandle:
    """One submitted run: read its events, wait for its result, ask its status, cancel it."""

    def __init__(
        self, store: RunStore, run_id: str, graph: str, entrypoint: bool = False,
        watch: EndWatch | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.graph = graph
        self.entrypoint = entrypoint  # a Functional API run: its state is {"input", "output"}
        self.root = False  # a run of a graph whose state is one value: its `__root__` key
        self.watch = watch  # how the client that submitted the run hears of its end

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self.run_id!r}, graph={self.graph!r})"

    async def stream(
        self, mode: str | Sequence[str] = "values", *, subgraphs: bool = False
    ) -> AsyncIterator[Any]:
        """The run's events of the given mode(s), from its first; raises if the run failed.

        One mode yields payloads; a list of modes yields (mode, payload) tuples, as LangGraph.
        With `subgraphs`, the events of the subgraphs its tasks run come too, each before the
        update of the task that ran it, and every event is prefixed by its namespace: a tuple
        of `node:task` parts, () for the run's own.
        """
        key = "output" if self.entrypoint else ROOT if self.root else None
        async for event in run_events.stream(self.store, self.run_id, mode, subgraphs, key):
            yield event

    async def result(self, timeout: float | None = None) -> Any:
        """The final state (a dict), once the run is done; raises the run's error if it failed.
        An interrupted run gives its state so far, with its interrupts under `__interrupt__`.
        Raises TimeoutError after `timeout` seconds, RunNotFoundError once the run is gone."""
        async with asyncio.timeout(timeout):
            return self.output_of(await self.end())

    def output_of(self, end: dict[str, Any]) -> Any:
        """The result an end event tells (see `result`); raises the run's error if it failed."""
        run_events.raise_unless_done(end)
        output = end.get("output")
        key = "output" if self.entrypoint else ROOT if self.root else None
        if key is not None and isinstance(output, dict):
            return {"__interrupt__": output["__interrupt__"]} if "__interrupt__" in output else (
                output.get(key))
        return output

    async def end(self) -> dict[str, Any]:
        """The run's end event: status, and output or error."""
        if self.watch is not None:
            try:
                told = await self._told_end(self.watch)
            except Exception as exc:  # Redis away: the event stream rides it out
                if not lost_redis(exc):
                    raise
                told = None
            finally:
                self.watch.forget(self.run_id)
            if told is not None:
                return told
        async for event_mode, payload in self.store.events.read(self.run_id):
            if event_mode == "end":
                return dict(payload)
        raise RuntimeError(f"run {self.run_id}: event stream ended without an end event")

    async def _told_end(self, watch: EndWatch) -> dict[str, Any] | None:
        """The end event once the run's end is told to this client (or its status, looked at
        when nothing is told for a while, says it ended); None: read the event stream."""
        return await watch.end_of(self.run_id)

    async def status(self) -> str:
        """pending, running, done, failed or cancelled ('unknown' once the run has expired)."""
        return await self.store.status(self.run_id) or "unknown"

    async def drain(self, reason: str = "shutdown") -> None:
        """Stop the run once its running step is done (its checkpoint saved): it ends raising
        GraphDrained, and its thread can be resumed later (`submit(graph, None, config)`)."""
        await self.store.request_drain(self.run_id, reason)

    async def cancel(self) -> None:
        """Stop the run: no further superstep starts; it ends as cancelled."""
        if await self.status() not in FINAL_STATUSES:
            await self.store.request_cancel(self.run_id)
