"""How a producer waits for the ends of the runs it submitted: one blocking pop for all of them.

A run submitted by a client names the client (`waiter`); the orchestrator that finishes the run
pushes its id to the client's ends list (`protocol.ends_key`). So a producer awaiting a thousand
results holds one blocked connection, woken once per finished run, instead of a blocking read of
every run's events, woken by each of their events. The notice is a shortcut, not the truth: a
waiter that hears nothing for a while looks at the run's status itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from typing import Any

from arqgraph import protocol
from arqgraph.storage.connection import Backoff, lost_redis
from arqgraph.storage.runs import RunStore

log = logging.getLogger("arqgraph.client")

REMEMBERED = 10_000  # ids of ended runs remembered (for results asked for late, or twice)
END_CHECK = 2.0  # seconds a run's end is awaited from its orchestrator before looking at it


class EndWatch:
    """The ends of one client's runs, heard by one task (while someone waits)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.waiter = uuid.uuid4().hex
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()  # told, newest last
        self._listener: asyncio.Task[None] | None = None

    async def wait(self, run_id: str, timeout: float) -> bool:
        """Whether the run was told to have ended within `timeout` seconds."""
        if run_id in self._ended:
            return True
        future = self._waiting.get(run_id)
        if future is None:
            future = self._waiting[run_id] = asyncio.get_running_loop().create_future()
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen())
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            return True
        except TimeoutError:
            return False

    async def _listen(self) -> None:
        backoff = Backoff()
        while self._waiting:
            try:
                ended = await self.store.events.wait_ends(self.waiter, timeout=1.0)
            except Exception as exc:
                if not lost_redis(exc):
                    raise
                log.warning("lost Redis waiting for runs to end (%s); retrying in %.1fs",
                            exc, backoff.delay)
                await backoff.wait()
                continue
            backoff.reset()
            for run_id in ended:
                self._ended[run_id] = None
                future = self._waiting.pop(run_id, None)
                if future is not None and not future.done():
                    future.set_result(None)
            while len(self._ended) > REMEMBERED:
                self._ended.popitem(last=False)

    async def end_of(self, run_id: str) -> dict[str, Any] | None:
        """The run's end event once its end is told here (or its status, looked at when
        nothing is told for END_CHECK seconds, says it ended); None when the run is gone."""
        try:
            while not await self.wait(run_id, timeout=END_CHECK):
                status = await self.store.status(run_id)
                if status is None:
                    return None
                if status in protocol.FINAL_STATUSES:
                    break
            return await self.store.events.end_event(run_id)
        finally:
            self.forget(run_id)

    def forget(self, run_id: str) -> None:
        """Nobody waits for this run any more (if it ended, that is remembered)."""
        self._waiting.pop(run_id, None)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
