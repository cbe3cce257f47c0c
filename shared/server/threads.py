"""Threads: create, read, search, patch and delete them; their state, its updates and history,
all read from the cluster's checkpoints."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arqgraph.server.authz import authorize, check, matches
from arqgraph.server.context import (
    Served,
    body_of,
    check_thread_id,
    checkpoint_in,
    graph_for,
    served,
    thread_config,
    thread_json,
    thread_record,
)
from arqgraph.server.records import ThreadRecord
from arqgraph.server.shapes import checkpoint_of, now_iso, thread_state


async def existing(request: Request, action: str = "read",
                   value: dict[str, Any] | None = None) -> ThreadRecord:
    """The path's thread, if the caller may `action` it (`@auth.on.threads.<action>`)."""
    thread_id = request.path_params["thread_id"]
    record = await thread_record(served(request), check_thread_id(thread_id))
    if record is None:
        raise HTTPException(404, f"Thread {thread_id} not found")
    await check(request, "threads", action, {"thread_id": record.thread_id, **(value or {})},
                record.metadata, f"Thread {thread_id}")
    return record


async def create(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    thread_id = check_thread_id(str(body.get("thread_id") or uuid.uuid4()))
    asked: dict[str, Any] = {"thread_id": thread_id,
                             "metadata": dict(body.get("metadata") or {}),
                             "if_exists": body.get("if_exists")}
    filters = await authorize(request, "threads", "create", asked)
    earlier = await thread_record(s, thread_id)
    if earlier is not None:
        if body.get("if_exists") == "do_nothing" and matches(earlier.metadata, filters):
            return JSONResponse(await thread_json(s, earlier))
        raise HTTPException(409, f"Thread {thread_id} already exists")
    stamp = now_iso()
    graph_id = body.get("graph_id")
    if graph_id is not None:
        graph_id = graph_for(s, graph_id, 422).graph_id
    record = ThreadRecord(thread_id=thread_id, created_at=stamp, updated_at=stamp,
                          metadata=asked["metadata"], graph_id=graph_id)
    await s.records.put_thread(record)
    return JSONResponse(await thread_json(s, record))


async def get(request: Request) -> JSONResponse:
    return JSONResponse(await thread_json(served(request), await existing(request)))


async def patch(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    asked = {"metadata": dict(body.get("metadata") or {})}
    record = await existing(request, "update", asked)
    record.metadata = {**record.metadata, **asked["metadata"]}
    record.updated_at = now_iso()
    await s.records.put_thread(record)
    return JSONResponse(await thread_json(s, record))


async def delete(request: Request) -> Response:
    s = served(request)
    record = await existing(request, "delete")
    await s.client.delete_thread(record.thread_id)
    await s.records.delete_thread(record.thread_id)
    return Response(status_code=204)


async def prune(request: Request) -> JSONResponse:
    """POST /threads/prune: the listed threads (those there and the caller's to delete) are
    deleted (`strategy="delete"`) or keep only their latest checkpoint (`"keep_latest"`: their
    state stays, their history is that one checkpoint)."""
    s, body = served(request), await body_of(request)
    strategy = body.get("strategy") or "delete"
    if strategy not in ("delete", "keep_latest"):
        raise HTTPException(422, "strategy must be 'delete' or 'keep_latest'")
    pruned = 0
    for raw in body.get("thread_ids") or []:
        record = await thread_record(s, check_thread_id(str(raw)))
        if record is None or not matches(record.metadata, await authorize(
                request, "threads", "delete", {"thread_id": record.thread_id})):
            continue
        if strategy == "keep_latest":
            pruned += await s.client.store.threads.keep_latest(record.thread_id)
            continue
        await s.client.delete_thread(record.thread_id)
        await s.records.delete_thread(record.thread_id)
        pruned += 1
    return JSONResponse({"pruned_count": pruned})


async def _matching(request: Request, body: dict[str, Any]) -> list[dict[str, Any]]:
    s, found = served(request), []
    filters = await authorize(request, "threads", "search", {
        "metadata": dict(body.get("metadata") or {}), "values": dict(body.get("values") or {}),
        **{k: body.get(k) for k in ("status", "limit", "offset")}})
    for thread_id in await s.records.thread_ids():
        record = await s.records.get_thread(thread_id)
        if record is None or not matches(record.metadata, filters) or any(
                record.metadata.get(k) != v for k, v in (body.get("metadata") or {}).items()):
            continue
        shown = await thread_json(s, record)
        values = shown["values"] if isinstance(shown["values"], dict) else {}
        if body.get("status") not in (None, shown["status"]) or any(
                values.get(k) != v for k, v in (body.get("values") or {}).items()):
            continue
        found.append(shown)
    return found


async def search(request: Request) -> JSONResponse:
    body = await body_of(request)
    found = await _matching(request, body)
    offset, limit = int(body.get("offset") or 0), int(body.get("limit") or 10)
    return JSONResponse(found[offset:offset + limit])


async def count(request: Request) -> JSONResponse:
    return JSONResponse(len(await _matching(request, await body_of(request))))


async def get_state(request: Request) -> JSONResponse:
    s = served(request)
    record = await existing(request)
    config = thread_config(record.thread_id)
    checkpoint_id = request.path_params.get("checkpoint_id")
    if checkpoint_id:
        config["configurable"]["checkpoint_id"] = checkpoint_id
    subgraphs = request.query_params.get("subgraphs", "").lower() in ("1", "true")
    return JSONResponse(thread_state(await s.client.get_state(config, subgraphs=subgraphs)))


async def get_state_at(request: Request) -> JSONResponse:
    """POST /threads/{id}/state/checkpoint: the state at the body's `checkpoint`."""
    s, body = served(request), await body_of(request)
    record = await existing(request)
    config = {"configurable": {**checkpoint_in(body), "thread_id": record.thread_id}}
    return JSONResponse(thread_state(await s.client.get_state(
        config, subgraphs=bool(body.get("subgraphs")))))


async def graph_of_thread(s: Served, record: ThreadRecord) -> str:
    if record.graph_id is None:
        raise HTTPException(400, f"Thread {record.thread_id} has no graph: run it first")
    return graph_for(s, record.graph_id, 422).cluster_name


async def update_state(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    record = await existing(request, "update")
    configurable: dict[str, Any] = {**checkpoint_in(body), "thread_id": record.thread_id}
    if body.get("checkpoint_id"):
        configurable["checkpoint_id"] = body["checkpoint_id"]
    written = await s.client.update_state(await graph_of_thread(s, record),
                                          {"configurable": configurable}, body.get("values"),
                                          body.get("as_node"))
    return JSONResponse({"checkpoint": checkpoint_of(written)})


async def history(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    record = await existing(request)
    before = body.get("before")
    config = {"configurable": {**checkpoint_in(body), "thread_id": record.thread_id}}
    snapshots = await s.client.get_state_history(  # (a subgraph's, or one checkpoint, if named)
        config, filter=body.get("metadata") or None,
        before={"configurable": before} if isinstance(before, dict) else None,
        limit=int(body.get("limit") or 10))
    return JSONResponse([thread_state(x) for x in snapshots])


async def copy(request: Request) -> JSONResponse:
    """A new thread with the thread's checkpoints (and its metadata), to run on apart."""
    s = served(request)
    record = await existing(request)
    new_id, stamp = str(uuid.uuid4()), now_iso()
    await s.client.store.threads.copy(record.thread_id, new_id)
    copied = record.model_copy(update={"thread_id": new_id, "created_at": stamp,
                                       "updated_at": stamp})
    await s.records.put_thread(copied)
    return JSONResponse(await thread_json(s, copied))


routes = [
    Route("/threads", create, methods=["POST"]),
    Route("/threads/search", search, methods=["POST"]),
    Route("/threads/count", count, methods=["POST"]),
    Route("/threads/prune", prune, methods=["POST"]),
    Route("/threads/{thread_id}", get, methods=["GET"]),
    Route("/threads/{thread_id}", patch, methods=["PATCH"]),
    Route("/threads/{thread_id}", delete, methods=["DELETE"]),
    Route("/threads/{thread_id}/copy", copy, methods=["POST"]),
    Route("/threads/{thread_id}/state", get_state, methods=["GET"]),
    Route("/threads/{thread_id}/state", update_state, methods=["POST"]),
    Route("/threads/{thread_id}/state/checkpoint", get_state_at, methods=["POST"]),
    Route("/threads/{thread_id}/state/{checkpoint_id}", get_state, methods=["GET"]),
    Route("/threads/{thread_id}/history", history, methods=["POST"]),
]
