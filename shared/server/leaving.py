"""`on_disconnect="cancel"` (LangGraph's; "continue" is the default): a run whose client leaves
before it ends is cancelled. A stream's client leaving closes the stream's generator; a
`runs.wait` client leaving is heard as the ASGI disconnect message.

A server killed mid-run leaves its clients too, as LangGraph's server does when it is killed
(the run stops there with the process that runs it). Following such a run is a duty
(`arqgraph.server.duties`) of the server serving its client, renewed while it serves; if the
server stops, another takes the duty over once its lease lapses and cancels the run, unless a
client came back to follow it (a stream reconnecting with `cancel_on_disconnect`, as the
stream's `Location` says, to any server) and so took the duty on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request

from arqgraph.client import RunHandle
from arqgraph.server.context import Served
from arqgraph.server.duties import Duty

WATCH = "watch"


async def follow(s: Served, run_id: str) -> str:
    """Take on the run's following (a duty held while its client is served): its id."""
    duty = Duty(WATCH, run_id, {})
    await s.duties.add(duty)
    return duty.id


def left(s: Served, handle: RunHandle, duty_id: str) -> None:
    """The client left before the run ended: cancel it, in a task of its own (the request's
    own task is being torn down)."""
    async def cancel() -> None:
        await handle.cancel()
        await s.duties.finish(duty_id)

    s.spawn(cancel())


async def cancelling(s: Served, handle: RunHandle,
                     events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """`events`, cancelling the run if the client leaves before the last."""
    duty_id = await follow(s, handle.run_id)
    finished = False
    try:
        async for event in events:
            yield event
        finished = True
    finally:
        if finished:
            s.spawn(s.duties.finish(duty_id))
        else:
            left(s, handle, duty_id)


async def ended_before_leaving(s: Served, request: Request, handle: RunHandle) -> bool:
    """Wait for the run's end or the client's leaving, whichever is first: whether the run
    ended first (if not, the run is cancelled)."""
    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    duty_id = await follow(s, handle.run_id)
    end, leaving = asyncio.ensure_future(handle.end()), asyncio.ensure_future(gone())
    done, pending = await asyncio.wait({end, leaving}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if end in done:
        await s.duties.finish(duty_id)
        return True
    left(s, handle, duty_id)
    return False


async def lapsed(s: Served, duty: Duty) -> None:
    """A run's following lapsed: the server serving its client stopped, and no client came
    back: cancel the run (a no-op once it ended)."""
    await s.client.handle(duty.run_id).cancel()
