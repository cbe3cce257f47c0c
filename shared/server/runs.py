"""Runs: started in the background, waited for, or streamed over SSE; read, listed, joined,
cancelled and deleted. Every run is a cluster run: this process only submits it and reads its
events, so any server can serve any run's stream or result."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arqgraph.client import RunHandle
from arqgraph.server.authz import check
from arqgraph.server.context import Served, body_of, check_thread_id, served, thread_record
from arqgraph.server.leaving import cancelling, ended_before_leaving
from arqgraph.server.records import RunInfo
from arqgraph.server.shapes import RUN_STATUSES, dumps
from arqgraph.server.sse import cluster_modes, sse_events
from arqgraph.server.start import (
    cancel_pending,
    handle_of,
    result_of,
    roll_back,
    run_json,
    run_status,
    start_run,
    started,
)


def _run_path(info: RunInfo, tail: str) -> str:
    return f"/threads/{info.thread_id}/runs/{info.run_id}/{tail}"


def stream_response(s: Served, info: RunInfo, handle: RunHandle | None, request: Request,
                    cancel_on_disconnect: bool = False) -> EventSourceResponse:
    """The run's events over SSE (a delayed run's once it starts). Its `Location`, where a
    client reconnects, keeps `cancel_on_disconnect`: the client that comes back still has the
    run cancelled if it leaves (see `arqgraph.server.leaving`)."""
    last = request.headers.get("last-event-id")

    async def events() -> AsyncIterator[dict[str, Any]]:
        try:
            on = handle or await started(s, info)
        except HTTPException as exc:  # (cancelled before it started)
            yield {"event": "error", "data": dumps({"error": "HTTPException",
                                                    "message": exc.detail})}
            return
        except (asyncio.CancelledError, GeneratorExit):  # the client left before it started
            if cancel_on_disconnect:
                s.spawn(cancel_pending(s, info))
            raise
        shown = sse_events(on, info, last)
        if cancel_on_disconnect:
            shown = cancelling(s, on, shown)
        async for event in shown:
            yield event

    location = _run_path(info, "stream") + (
        "?cancel_on_disconnect=true" if cancel_on_disconnect else "")
    return EventSourceResponse(
        events(), headers={"Location": location,
                           "Content-Location": _run_path(info, "")[:-1]}, ping=15)


async def create(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    info, _ = await start_run(s, body, request.path_params.get("thread_id"), request)
    return JSONResponse(run_json(info, "pending"),
                        headers={"Content-Location": _run_path(info, "")[:-1]})


async def stream(request: Request) -> EventSourceResponse:
    s, body = served(request), await body_of(request)
    info, handle = await start_run(s, body, request.path_params.get("thread_id"), request)
    return stream_response(s, info, handle, request, body.get("on_disconnect") == "cancel")


async def wait(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    info, handle = await start_run(s, body, request.path_params.get("thread_id"), request)
    handle = handle or await started(s, info)
    if body.get("on_disconnect") == "cancel" and not await ended_before_leaving(
            s, request, handle):
        return JSONResponse({}, status_code=499)  # (nobody reads it: the client left)
    return JSONResponse(await result_of(s, info, handle),
                        headers={"Location": _run_path(info, "join")})


async def thread_allowed(request: Request, thread_id: str, action: str) -> None:
    """404 unless the caller may `action` the thread's runs (`@auth.on.threads.<action>`)."""
    record = await thread_record(served(request), thread_id)
    await check(request, "threads", action, {"thread_id": thread_id},
                record.metadata if record else {}, f"Thread {thread_id}")


async def existing_run(s: Served, request: Request, action: str = "read") -> RunInfo:
    thread_id = check_thread_id(request.path_params["thread_id"])
    info = await s.records.get_run(request.path_params["run_id"])
    if info is None or info.thread_id != thread_id:
        raise HTTPException(404, f"Run {request.path_params['run_id']} not found")
    await thread_allowed(request, thread_id, action)
    return info


async def get(request: Request) -> JSONResponse:
    s = served(request)
    info = await existing_run(s, request)
    return JSONResponse(run_json(info, await run_status(s, info)))


async def list_runs(request: Request) -> JSONResponse:
    s = served(request)
    thread_id = check_thread_id(request.path_params["thread_id"])
    await thread_allowed(request, thread_id, "read")
    limit = int(request.query_params.get("limit", 10))
    offset = int(request.query_params.get("offset", 0))
    wanted = request.query_params.get("status")
    shown = []
    for run_id in await s.records.run_ids(thread_id):
        info = await s.records.get_run(run_id)
        if info is not None:
            shown.append(run_json(info, await run_status(s, info)))
    shown = [r for r in shown if wanted in (None, r["status"])]
    return JSONResponse(shown[offset:offset + limit])


async def join(request: Request) -> JSONResponse:
    s = served(request)
    info = await existing_run(s, request)
    return JSONResponse(await result_of(s, info, await started(s, info)))


async def join_stream(request: Request) -> EventSourceResponse:
    s = served(request)
    info = await existing_run(s, request)
    asked = [m for m in request.query_params.getlist("stream_mode") if m]
    if asked:
        info = info.model_copy(update={"stream_mode": cluster_modes(asked)})
    leave = request.query_params.get("cancel_on_disconnect", "").lower() in ("1", "true")
    if info.starts_at is None:  # (404 now if it expired)
        await handle_of(s, info)
    return stream_response(s, info, None, request, leave)


async def cancel(request: Request) -> Response:
    s = served(request)
    info = await existing_run(s, request, "update")
    if await cancel_pending(s, info):
        return JSONResponse({}) if request.query_params.get("wait") in ("1", "true") else (
            Response(status_code=202))
    handle = await handle_of(s, info)
    await handle.cancel()
    if request.query_params.get("action") == "rollback":
        await handle.end()
        await roll_back(s, info)
    if request.query_params.get("wait") in ("1", "true"):
        await handle.end()
        return JSONResponse({})
    return Response(status_code=202)


async def create_batch(request: Request) -> JSONResponse:
    """POST /runs/batch: a list of runs to start, each with its own `thread_id` or none."""
    s = served(request)
    try:
        payloads = json.loads(await request.body())
    except ValueError as exc:
        raise HTTPException(422, f"the request body is not JSON: {exc}") from exc
    if not isinstance(payloads, list) or not all(isinstance(p, dict) for p in payloads):
        raise HTTPException(422, "the request body must be a list of run objects")
    started = [await start_run(s, p, p.get("thread_id"), request) for p in payloads]
    return JSONResponse([run_json(info, "pending") for info, _ in started])


async def cancel_many(request: Request) -> Response:
    """POST /runs/cancel: a thread's runs by id, or those of a status."""
    s, body = served(request), await body_of(request)
    if not body.get("thread_id"):
        raise HTTPException(422, "cancel_many needs a thread_id: runs are kept by thread")
    thread_id = check_thread_id(str(body["thread_id"]))
    await thread_allowed(request, thread_id, "update")
    wanted = body.get("status")
    for run_id in body.get("run_ids") or await s.records.run_ids(thread_id):
        info = await s.records.get_run(str(run_id))
        status = await run_status(s, info) if info else "unknown"
        if info is None or info.thread_id != thread_id or status == "unknown" or (
                wanted not in (None, "all") and RUN_STATUSES.get(status) != wanted):
            continue
        if await cancel_pending(s, info):
            continue
        handle = await handle_of(s, info)
        await handle.cancel()
        if request.query_params.get("action") == "rollback":
            await handle.end()
            await roll_back(s, info)
    return Response(status_code=204)


async def delete(request: Request) -> Response:
    s = served(request)
    info = await existing_run(s, request, "delete")
    status = await run_status(s, info)
    if status in ("pending", "running"):
        raise HTTPException(409, f"Run {info.run_id} is still {status}: cancel it first")
    await s.records.delete_run(info)
    return Response(status_code=204)


routes = [
    Route("/runs", create, methods=["POST"]),
    Route("/runs/stream", stream, methods=["POST"]),
    Route("/runs/wait", wait, methods=["POST"]),
    Route("/runs/batch", create_batch, methods=["POST"]),
    Route("/runs/cancel", cancel_many, methods=["POST"]),
    Route("/threads/{thread_id}/runs", create, methods=["POST"]),
    Route("/threads/{thread_id}/runs", list_runs, methods=["GET"]),
    Route("/threads/{thread_id}/runs/stream", stream, methods=["POST"]),
    Route("/threads/{thread_id}/runs/wait", wait, methods=["POST"]),
    Route("/threads/{thread_id}/runs/{run_id}", get, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}", delete, methods=["DELETE"]),
    Route("/threads/{thread_id}/runs/{run_id}/cancel", cancel, methods=["POST"]),
    Route("/threads/{thread_id}/runs/{run_id}/join", join, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}/stream", join_stream, methods=["GET"]),
]
