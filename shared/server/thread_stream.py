"""`GET /threads/{thread_id}/stream` (`threads.join_stream`): every run on a thread, one after
the other as the thread runs them, each as its own stream shows it (a `metadata` event first,
then its modes), followed by `metadata` `{"status": "run_done", "run_id": ...}`. The stream
stays open for the thread's next runs until the client leaves.

A run already ended when the client joins is not shown; one running is shown from its start.
Each event's id is `run_id:position`: a client reconnecting with `Last-Event-ID`, to any
server, gets the rest of that run and every later run, none lost and none twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from arqgraph import protocol
from arqgraph.server.context import Served, served
from arqgraph.server.shapes import dumps
from arqgraph.server.sse import run_events
from arqgraph.server.start import handle_of
from arqgraph.server.threads import existing

IDLE_CHECK = 0.5  # seconds between looks for a new run while the thread has none going
THREAD_MODES = ("run_modes", "lifecycle", "state_update")


def _resume_point(last_event_id: str | None) -> tuple[str | None, int]:
    run_id, _, position = (last_event_id or "").rpartition(":")
    return (run_id, int(position)) if run_id and position.isdigit() else (None, -1)


async def thread_events(s: Served, thread_id: str, modes: list[str],
                        last_event_id: str | None) -> AsyncIterator[dict[str, Any]]:
    """The thread's runs' events as sse-starlette's dicts, from the run after `last_event_id`'s
    (or the first not yet ended), forever."""
    after_run, after = _resume_point(last_event_id)
    seen: set[str] = set()
    joined, since = True, float("-inf")
    while True:
        listed = await s.records.runs_since(thread_id, since)  # (only the newest, once joined)
        since = max([since, *(score for _, score in listed)])
        new = [r for r, _ in listed if r not in seen]
        resuming = joined and after_run in new
        if resuming:  # skip the runs before the one last seen
            new = new[new.index(str(after_run)):]
        for run_id in new:
            info = await s.records.get_run(run_id)
            status = await s.client.store.status(run_id)
            if info is not None and info.starts_at is not None and status is None:
                continue  # (a delayed run: listed again when it starts)
            seen.add(run_id)
            if info is None or status is None or (
                    joined and not resuming and status in protocol.FINAL_STATUSES):
                continue
            try:
                handle = await handle_of(s, info)
            except HTTPException:  # (expired meanwhile)
                continue
            position = -1
            events = run_events(handle, info)
            done = ("metadata", {"status": "run_done", "run_id": run_id})
            async for event, data in _then(events, done):
                position += 1
                shown = "run_modes" in modes or (
                    "lifecycle" in modes and event == "metadata")
                if shown and (run_id != after_run or position > after):
                    yield {"event": event, "data": dumps(data), "id": f"{run_id}:{position}"}
        joined = False
        if not new:
            await asyncio.sleep(IDLE_CHECK)


async def _then(events: AsyncIterator[tuple[str, Any]], last: tuple[str, Any]
                ) -> AsyncIterator[tuple[str, Any]]:
    async for item in events:
        yield item
    yield last


async def join(request: Request) -> EventSourceResponse:
    record = await existing(request)
    asked = [m for value in (request.query_params.getlist("stream_mode")
                             + request.query_params.getlist("stream_modes"))
             for m in value.split(",") if m.strip()]
    modes = [m.strip() for m in asked] or ["run_modes"]
    unknown = [m for m in modes if m not in THREAD_MODES]
    if unknown:
        raise HTTPException(422, f"Invalid stream mode: {unknown[0]}")
    return EventSourceResponse(
        thread_events(served(request), record.thread_id, modes,
                      request.headers.get("last-event-id")), ping=15)


routes = [Route("/threads/{thread_id}/stream", join, methods=["GET"])]
