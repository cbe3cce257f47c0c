"""The producer side: submit runs by graph name and follow them. Needs no graph code."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from arq.connections import ArqRedis

from shared.errors import RunCancelledError, UnknownGraphError
from shared.protocol import FINAL_STATUSES, decode_error
from shared.store import RunStore, connect


class RunHandle:
    """One submitted run: read its events, wait for its result, ask its status, cancel it."""

    def __init__(self, store: RunStore, run_id: str, graph: str) -> None:
        self.store = store
        self.run_id = run_id
        self.graph = graph

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self.run_id!r}, graph={self.graph!r})"

    async def stream(
        self, mode: str | Sequence[str] = "values"
    ) -> AsyncIterator[Any]:
        """The run's events of the given mode(s), from its first; raises if the run failed.

        One mode yields payloads; a list of modes yields (mode, payload) tuples, as LangGraph.
        """
        modes = {mode} if isinstance(mode, str) else set(mode)
        async for event_mode, payload in self.store.events(self.run_id):
            if event_mode == "end":
                _raise_unless_done(payload)
                return
            if event_mode in modes:
                yield payload if isinstance(mode, str) else (event_mode, payload)

    async def result(self) -> Any:
        """The final state (a dict), once the run is done; raises the run's error if it failed."""
        async for event_mode, payload in self.store.events(self.run_id):
            if event_mode == "end":
                _raise_unless_done(payload)
                return payload.get("output")
        raise RuntimeError(f"run {self.run_id}: event stream ended without an end event")

    async def status(self) -> str:
        """pending, running, done, failed or cancelled ('unknown' once the run has expired)."""
        return await self.store.status(self.run_id) or "unknown"

    async def cancel(self) -> None:
        """Stop the run: no further superstep starts; it ends as cancelled."""
        if await self.status() not in FINAL_STATUSES:
            await self.store.request_cancel(self.run_id)


def _raise_unless_done(end: dict[str, Any]) -> None:
    if end["status"] == "failed":
        raise decode_error(end["error"]).rebuild()
    if end["status"] == "cancelled":
        raise RunCancelledError("the run was cancelled")


class Client:
    """Submits runs to the orchestrators serving a Redis (async)."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis
        self.store = RunStore(redis)

    @classmethod
    async def connect(cls, url: str) -> Client:
        return cls(await connect(url, what="client"))

    async def close(self) -> None:
        await self.redis.aclose()

    async def submit(
        self,
        graph_name: str,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        context: Any = None,
        run_id: str | None = None,
    ) -> RunHandle:
        """Start a run of the graph registered as `graph_name` with `input`."""
        if await self.store.graph_info(graph_name) is None:
            known = await self.store.graph_names()
            raise UnknownGraphError(
                f"no orchestrator serves a graph named {graph_name!r}; "
                f"known graphs: {', '.join(known) or 'none (is an orchestrator running?)'}"
            )
        run_id = run_id or uuid.uuid4().hex
        if isinstance(input, dict):
            from shared.codec import pack_values

            pack_values(input, where="input")  # fail here, naming the key, not on a worker
        await self.store.create_run(run_id, graph_name, input, config or {}, context)
        return RunHandle(self.store, run_id, graph_name)

    def handle(self, run_id: str, graph: str = "") -> RunHandle:
        return RunHandle(self.store, run_id, graph)


class SyncClient:
    """`Client` for code without an event loop: runs one in a background thread."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client: Client = self._call(Client.connect(url))

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def submit(self, graph_name: str, input: Any, config: dict[str, Any] | None = None,
               *, context: Any = None) -> SyncRunHandle:
        handle = self._call(self._client.submit(graph_name, input, config, context=context))
        return SyncRunHandle(self, handle)

    def close(self) -> None:
        self._call(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


class SyncRunHandle:
    def __init__(self, client: SyncClient, handle: RunHandle) -> None:
        self._client = client
        self.handle = handle
        self.run_id = handle.run_id

    def result(self) -> Any:
        return self._client._call(self.handle.result())

    def status(self) -> str:
        return str(self._client._call(self.handle.status()))

    def cancel(self) -> None:
        self._client._call(self.handle.cancel())

    def stream(self, mode: str | Sequence[str] = "values") -> Iterator[Any]:
        agen = self.handle.stream(mode)
        while True:
            try:
                yield self._client._call(agen.__anext__())
            except StopAsyncIteration:
                return
