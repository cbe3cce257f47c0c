"""Submits let through together: under load, a server's runs reach the cluster in bursts, as a
producer's `Client` submitting many at once sends them.

The pool spends less per run on runs that come together: its Redis calls go in shared
pipelines (`arqgraph.storage.batch`), the orchestrator takes a burst's notices in one read, a
worker a burst's jobs. Requests reach a server one at a time, so without a gate each run comes
alone. A submit made while another is on its way waits for the gate's next opening, at most
`window` seconds, and goes with the others waiting then; one made while none is (a quiet
server) goes at once, so a lone run pays nothing. 0 seconds: no gate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

WINDOW = 0.02  # seconds a submit may wait for company under load (ARQGRAPH_SERVE_GATHER)


class Gate:
    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self.submitting = 0  # submits past the gate, not yet done
        self._opening: asyncio.Future[None] | None = None

    @contextlib.asynccontextmanager
    async def through(self) -> AsyncIterator[None]:
        """Wait for the gate (only while another submit is on its way), then submit."""
        if self.window and (self.submitting or self._opening is not None):
            if self._opening is None:
                loop = asyncio.get_running_loop()
                self._opening = loop.create_future()
                loop.call_later(self.window, self._open)
            await asyncio.shield(self._opening)
        self.submitting += 1
        try:
            yield
        finally:
            self.submitting -= 1

    def _open(self) -> None:
        opening, self._opening = self._opening, None
        if opening is not None and not opening.done():
            opening.set_result(None)
