"""Runs: started in the background, waited for, or streamed over SSE; read, listed, joined,
cancelled and deleted. Every run is a cluster run: this process only submits it and reads its
events, so any server can serve any run's stream or result."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arqgraph import protocol
from arqgraph.client import RunHandle, run_id_for
from arqgraph.constants import COPY_NODE
from arqgraph.errors import RunCancelledError, ThreadBusyError
from arqgraph.server.authz import authorize, check, matches
from arqgraph.server.context import (
    Served,
    body_of,
    busy_run,
    check_thread_id,
    checkpoint_in,
    find_assistant,
    served,
    thread_config,
    thread_record,
)
from arqgraph.server.events import EVENTS, recording
from arqgraph.server.leaving import cancel_later, cancelling, ended_before_leaving
from arqgraph.server.records import RunInfo, ThreadRecord
from arqgraph.server.shapes import RUN_STATUSES, jsonable, now_iso
from arqgraph.server.sse import cluster_modes, sse_events
from arqgraph.server.webhooks import call_after, check_webhook
from arqgraph.types import Command

STRATEGIES = ("reject", "interrupt", "rollback", "enqueue")
BUSY_RETRIES = 20  # runs that may slip in between ours ending a busy run and submitting


def command_of(raw: Any) -> Command[Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not set(raw) <= {"resume", "goto", "update"}:
        raise HTTPException(422, "command must be an object of resume, goto and update")
    return Command(resume=raw.get("resume"), goto=raw.get("goto") or (),
                   update=raw.get("update"))


def durability_of(body: dict[str, Any]) -> str | None:
    """The run's `durability` ("sync", "async", "exit"), or the deprecated `checkpoint_during`
    as LangGraph's server reads it (False: "exit")."""
    if body.get("durability") is None and body.get("checkpoint_during") is False:
        return "exit"
    return None if body.get("durability") is None else str(body["durability"])


def run_json(info: RunInfo, status: str) -> dict[str, Any]:
    return {"run_id": info.run_id, "thread_id": info.thread_id,
            "assistant_id": info.assistant_id, "created_at": info.created_at,
            "updated_at": info.updated_at, "status": RUN_STATUSES.get(status, status),
            "metadata": info.metadata, "kwargs": info.kwargs,
            "multitask_strategy": info.multitask_strategy}


async def latest_checkpoint(s: Served, thread_id: str) -> str | None:
    saved = await s.client.store.threads.latest_checkpoint(protocol.thread_tag(thread_id))
    return saved.id if saved else None


async def handle_of(s: Served, info: RunInfo) -> RunHandle:
    """The handle of a recorded run, to read its events; 404 once the cluster forgot it."""
    if await s.client.store.status(info.run_id) is None:
        raise HTTPException(404, f"Run {info.run_id} has expired: its events are gone")
    handle = s.client.handle(info.run_id, s.config.graphs[info.graph_id].cluster_name)
    registered = await s.client.store.graph_info(handle.graph)
    if registered is not None:
        handle.entrypoint, handle.root = registered.entrypoint, registered.root
    return handle


async def _thread_for_run(
    s: Served, request: Request | None, thread_id: str | None, body: dict[str, Any]
) -> tuple[ThreadRecord | None, dict[str, Any]]:
    """The run's thread (made if `if_not_exists` says so; None for a stateless run) and the
    run's metadata, once `@auth.on.threads.create_run` allowed it (and added to it)."""
    record, made = None, False
    if thread_id is not None:
        record = await thread_record(s, check_thread_id(thread_id))
        if record is None:
            if body.get("if_not_exists") != "create":
                raise HTTPException(404, f"Thread {thread_id} not found")
            stamp = now_iso()
            record = ThreadRecord(thread_id=check_thread_id(thread_id), created_at=stamp,
                                  updated_at=stamp)
            made = True
    asked: dict[str, Any] = {
        "thread_id": record.thread_id if record else None,
        "assistant_id": body.get("assistant_id"), "run_id": None, "status": "pending",
        "metadata": dict(body.get("metadata") or {}),
        **{k: body.get(k) for k in ("multitask_strategy", "if_not_exists", "after_seconds",
                                    "prevent_insert_if_inflight")},
        "kwargs": {k: body.get(k) for k in ("input", "command", "config", "context")}}
    filters = await authorize(request, "threads", "create_run", asked)
    if record is not None and not made and not matches(record.metadata, filters):
        raise HTTPException(404, f"Thread {thread_id} not found")
    if made and record is not None:
        record.metadata = dict(asked["metadata"])
    return record, asked["metadata"]


async def _end_busy_run(s: Served, thread_id: str, strategy: str) -> None:
    """Make room on a busy thread as `strategy` says: cancel its run (interrupt, rollback:
    also forgotten), or wait for its end (enqueue)."""
    busy = await busy_run(s, thread_id)
    if not busy:
        return
    handle = s.client.handle(busy)
    if strategy in ("interrupt", "rollback"):
        await handle.cancel()
    await handle.end()
    if strategy == "rollback" and (info := await s.records.get_run(handle.run_id)):
        await roll_back(s, info)


async def roll_back(s: Served, info: RunInfo) -> None:
    """Undo an ended run: its thread goes back to the checkpoint it started from (copied as
    the thread's latest, as a fork is; the thread's checkpoints are dropped if it started from
    none) and its record is deleted."""
    if info.before_checkpoint:
        config = {"configurable": {"thread_id": info.thread_id,
                                   "checkpoint_id": info.before_checkpoint}}
        await s.client.bulk_update_state(s.config.graphs[info.graph_id].cluster_name, config,
                                         [[(None, COPY_NODE)]])
    elif not info.stateless:
        await s.client.delete_thread(info.thread_id)
    await s.records.delete_run(info)


async def start_run(
    s: Served, body: dict[str, Any], thread_id: str | None, request: Request | None = None
) -> tuple[RunInfo, RunHandle]:
    """Submit the body's run to the cluster (on `thread_id`, or stateless) and record it;
    `request`'s user must be allowed to (none: a cron's run)."""
    g, assistant = await find_assistant(s, body.get("assistant_id"), 422)
    if assistant["metadata"].get("created_by") != "system":  # (as LangGraph: a user's only)
        await check(request, "assistants", "read", {"assistant_id": assistant["assistant_id"]},
                    assistant["metadata"], f"Assistant {assistant['assistant_id']}")
    webhook = check_webhook(body.get("webhook"))
    if thread_id is None and body.get("on_completion") == "keep":  # a thread that stays
        thread_id, body = str(uuid.uuid4()), {**body, "if_not_exists": "create"}
    strategy = str(body.get("multitask_strategy") or "reject")
    if strategy not in STRATEGIES:
        raise HTTPException(422, f"multitask_strategy must be one of {STRATEGIES}")
    modes = cluster_modes(body.get("stream_mode"))
    asked: dict[str, Any] = dict(body.get("config") or {})
    config = {**assistant["config"], **asked}  # (the assistant's, overridden by the run's)
    configurable = {**(assistant["config"].get("configurable") or {}),
                    **(asked.get("configurable") or {})}
    context = body.get("context")
    if assistant["context"] and isinstance(context or {}, dict):
        context = {**assistant["context"], **(context or {})}
    checkpoint = checkpoint_in(body)
    if body.get("checkpoint_id") or checkpoint.get("checkpoint_id"):
        configurable["checkpoint_id"] = body.get("checkpoint_id") or checkpoint["checkpoint_id"]
    before = None
    record, metadata = await _thread_for_run(s, request, thread_id, body)
    if record is not None:
        configurable["thread_id"] = record.thread_id
    config["configurable"] = configurable
    config = g.graph._merged(config, durability_of(body), body.get("interrupt_before"),
                             body.get("interrupt_after")) or config
    command = command_of(body.get("command"))
    run_input = command if command is not None else body.get("input")
    if command is None:  # a state or context the graph refuses: 422 here, not a failed run
        g.graph._check_call(run_input, context)
    key = uuid.uuid4().hex  # (the run's id is known before it is submitted)
    if EVENTS in modes:
        config = recording(config, run_id_for(key, record.thread_id if record else None))
    for _ in range(BUSY_RETRIES):
        if record is not None:
            before = await latest_checkpoint(s, record.thread_id)
        try:
            handle = await s.client.submit(g.cluster_name, run_input, config,
                                           context=context, stream_mode=modes, run_id=key)
            break
        except ThreadBusyError as exc:
            if strategy == "reject" or record is None:
                raise HTTPException(409, "Thread is already running a task. Wait for it to "
                                    "finish or choose a different multitask strategy.") from exc
            await _end_busy_run(s, record.thread_id, strategy)
    else:
        raise HTTPException(409, "the thread stayed busy with other runs")
    stamp = now_iso()
    if record is not None:
        record.graph_id = g.graph_id
        record.metadata = {**record.metadata, "graph_id": g.graph_id,
                           "assistant_id": assistant["assistant_id"]}
        record.updated_at = stamp
        await s.records.put_thread(record)
    info = RunInfo(
        run_id=handle.run_id, thread_id=record.thread_id if record else str(uuid.uuid4()),
        assistant_id=assistant["assistant_id"], graph_id=g.graph_id, created_at=stamp,
        updated_at=stamp, metadata=metadata, multitask_strategy=strategy,
        stream_mode=modes, stream_subgraphs=bool(body.get("stream_subgraphs")),
        stateless=record is None, before_checkpoint=before,
        kwargs=jsonable({k: body.get(k) for k in ("input", "command", "config", "context",
                                                  "interrupt_before", "interrupt_after")}))
    await s.records.put_run(info, s.retention)
    if webhook is not None:
        call_after(s, info, handle, webhook)
    return info, handle


def _run_path(info: RunInfo, tail: str) -> str:
    return f"/threads/{info.thread_id}/runs/{info.run_id}/{tail}"


async def result_of(s: Served, info: RunInfo, handle: RunHandle) -> Any:
    """What `runs.wait` returns: the final values (with `__interrupt__` if interrupted), or
    `__error__` for a failed run."""
    end = await handle.end()
    try:
        return jsonable(handle.output_of(end))
    except RunCancelledError:
        if info.stateless:
            return None
        return jsonable((await s.client.get_state(thread_config(info.thread_id))).values)
    except Exception as exc:
        return {"__error__": {"error": type(exc).__name__, "message": str(exc)}}


def stream_response(info: RunInfo, handle: RunHandle, request: Request,
                    cancel_on_disconnect: bool = False) -> EventSourceResponse:
    last = request.headers.get("last-event-id")
    events = sse_events(handle, info, last)
    if cancel_on_disconnect:
        events = cancelling(served(request), handle, events)
    return EventSourceResponse(
        events,
        headers={"Location": _run_path(info, "stream"),
                 "Content-Location": _run_path(info, "")[:-1]},
        ping=15)


async def create(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    info, _ = await start_run(s, body, request.path_params.get("thread_id"), request)
    return JSONResponse(run_json(info, "pending"),
                        headers={"Content-Location": _run_path(info, "")[:-1]})


async def stream(request: Request) -> EventSourceResponse:
    s, body = served(request), await body_of(request)
    info, handle = await start_run(s, body, request.path_params.get("thread_id"), request)
    return stream_response(info, handle, request, body.get("on_disconnect") == "cancel")


async def wait(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    info, handle = await start_run(s, body, request.path_params.get("thread_id"), request)
    if body.get("on_disconnect") == "cancel" and not await ended_before_leaving(request, handle):
        cancel_later(s, handle)
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
    return JSONResponse(run_json(info, await s.client.store.status(info.run_id) or "unknown"))


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
            shown.append(run_json(info, await s.client.store.status(run_id) or "unknown"))
    shown = [r for r in shown if wanted in (None, r["status"])]
    return JSONResponse(shown[offset:offset + limit])


async def join(request: Request) -> JSONResponse:
    s = served(request)
    info = await existing_run(s, request)
    return JSONResponse(await result_of(s, info, await handle_of(s, info)))


async def join_stream(request: Request) -> EventSourceResponse:
    s = served(request)
    info = await existing_run(s, request)
    asked = [m for m in request.query_params.getlist("stream_mode") if m]
    if asked:
        info = info.model_copy(update={"stream_mode": cluster_modes(asked)})
    leave = request.query_params.get("cancel_on_disconnect", "").lower() in ("1", "true")
    return stream_response(info, await handle_of(s, info), request, leave)


async def cancel(request: Request) -> Response:
    s = served(request)
    info = await existing_run(s, request, "update")
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
        status = await s.client.store.status(str(run_id)) if info else None
        if info is None or info.thread_id != thread_id or status is None or (
                wanted not in (None, "all") and RUN_STATUSES.get(status) != wanted):
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
    status = await s.client.store.status(info.run_id)
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
