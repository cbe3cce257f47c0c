"""`on_disconnect="cancel"` (LangGraph's; "continue" is the default): a run whose client leaves
before it ends is cancelled. A stream's client leaving closes the stream's generator; a
`runs.wait` client leaving is heard as the ASGI disconnect message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request

from arqgraph.client import RunHandle
from arqgraph.server.context import Served


def cancel_later(s: Served, handle: RunHandle) -> None:
    """Cancel the run in a task of its own: the request's own task is being torn down."""
    s.spawn(handle.cancel())


async def cancelling(s: Served, handle: RunHandle,
                     events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """`events`, cancelling the run if the client leaves before the last."""
    finished = False
    try:
        async for event in events:
            yield event
        finished = True
    finally:
        if not finished:
            cancel_later(s, handle)


async def ended_before_leaving(request: Request, handle: RunHandle) -> bool:
    """Wait for the run's end or the client's leaving, whichever is first: whether the run
    ended first."""
    async def left() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    end, gone = asyncio.ensure_future(handle.end()), asyncio.ensure_future(left())
    done, pending = await asyncio.wait({end, gone}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return end in done
