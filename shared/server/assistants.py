"""Assistants: one default assistant per served graph, with a UUID fixed by the graph id (the
graph id is accepted wherever an assistant id is), and assistants of the user's own
(`assistants.create`): a graph with a config, context and metadata of its own, versioned by
each update, kept in the cluster's Redis."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arqgraph.server.authz import authorize, check, matches
from arqgraph.server.config import ServedGraph
from arqgraph.server.context import (
    Served,
    body_of,
    default_assistant,
    find_assistant,
    graph_for,
    served,
)
from arqgraph.server.shapes import jsonable, now_iso

FIELDS = ("graph_id", "config", "context", "metadata", "name", "description")


def _config_and_context(body: dict[str, Any], base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config and context a create or update sets, kept in step as LangGraph keeps them
    (the context is the config's `configurable`); 400 if both are given."""
    config = dict(body.get("config") or {})
    context = body.get("context")
    if config.get("configurable") and context:
        raise HTTPException(400, "Cannot specify both configurable and context. Prefer "
                            "setting context alone.")
    if config.get("configurable"):
        context = config["configurable"]
    elif context:
        config["configurable"] = context
    return (config or base.get("config") or {},
            context if context is not None else base.get("context") or {})


async def _all(s: Served) -> list[dict[str, Any]]:
    """The users' assistants (newest first), then the graphs' default ones."""
    mine = [await s.records.get_assistant(i) for i in await s.records.assistant_ids()]
    return [d for d in mine if d] + [default_assistant(g) for g in s.config.graphs.values()]


async def _matching(request: Request) -> list[dict[str, Any]]:
    body = await body_of(request)
    filters = await authorize(request, "assistants", "search", {
        "graph_id": body.get("graph_id"), "metadata": dict(body.get("metadata") or {}),
        "limit": body.get("limit"), "offset": body.get("offset")})
    return [a for a in await _all(served(request))
            if matches(a["metadata"], filters) and body.get("graph_id") in (None, a["graph_id"])
            and body.get("name") in (None, a["name"])
            and all(a["metadata"].get(k) == v for k, v in (body.get("metadata") or {}).items())]


async def scoped(request: Request, action: str = "read") -> tuple[ServedGraph, dict[str, Any]]:
    """The path's assistant, if the caller may `action` it (`@auth.on.assistants.<action>`)."""
    assistant_id = request.path_params["assistant_id"]
    g, doc = await find_assistant(served(request), assistant_id)
    await check(request, "assistants", action, {"assistant_id": doc["assistant_id"]},
                doc["metadata"], f"Assistant {assistant_id}")
    return g, doc


async def search(request: Request) -> JSONResponse:
    body = await body_of(request)
    offset, limit = int(body.get("offset") or 0), int(body.get("limit") or 10)
    return JSONResponse((await _matching(request))[offset:offset + limit])


async def count(request: Request) -> JSONResponse:
    return JSONResponse(len(await _matching(request)))


async def create(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    g = graph_for(s, body.get("graph_id"), 404)
    assistant_id = str(uuid.UUID(str(body.get("assistant_id") or uuid.uuid4())))
    config, context = _config_and_context(body, {})
    asked: dict[str, Any] = {"assistant_id": assistant_id, "graph_id": g.graph_id,
                             "config": config, "context": context,
                             "metadata": dict(body.get("metadata") or {}),
                             "name": body.get("name")}
    filters = await authorize(request, "assistants", "create", asked)
    earlier = await s.records.get_assistant(assistant_id)
    if earlier is not None or s.config.find(assistant_id) is not None:
        if (body.get("if_exists") == "do_nothing" and earlier is not None
                and matches(earlier["metadata"], filters)):
            return JSONResponse(earlier)
        raise HTTPException(409, f"Assistant {assistant_id} already exists")
    stamp = now_iso()
    doc = {"assistant_id": assistant_id, "graph_id": g.graph_id, "config": jsonable(config),
           "context": jsonable(context), "metadata": asked["metadata"],
           "name": body.get("name") or "Untitled", "description": body.get("description"),
           "created_at": stamp, "updated_at": stamp}
    try:
        return JSONResponse(await s.records.put_assistant(doc, first=True))
    except ValueError:
        raise HTTPException(409, f"Assistant {assistant_id} already exists") from None


async def _own(request: Request, action: str) -> dict[str, Any]:
    """A user's assistant the caller may `action`; 409 for a default one (it stays as its
    graph)."""
    assistant_id = request.path_params["assistant_id"]
    if served(request).config.find(assistant_id) is not None:
        raise HTTPException(409, f"Assistant {assistant_id} is a graph's default assistant: "
                            "create one of your own to change it")
    return (await scoped(request, action))[1]


async def update(request: Request) -> JSONResponse:
    """A new version: the fields given replace the latest's (metadata is merged)."""
    s, body = served(request), await body_of(request)
    doc = await _own(request, "update")
    config, context = _config_and_context(body, doc)
    graph_id = graph_for(s, body["graph_id"], 404).graph_id if body.get("graph_id") else (
        doc["graph_id"])
    new = {**doc, "graph_id": graph_id, "config": jsonable(config),
           "context": jsonable(context), "metadata": {**doc["metadata"],
                                                      **(body.get("metadata") or {})},
           "updated_at": now_iso(),
           **{k: body[k] for k in ("name", "description") if body.get(k) is not None}}
    return JSONResponse(await s.records.put_assistant(new))


async def delete(request: Request) -> Response:
    s = served(request)
    await _own(request, "delete")
    await s.records.delete_assistant(request.path_params["assistant_id"])
    return Response(status_code=204)


async def versions(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    _, doc = await scoped(request)
    found = (await s.records.assistant_versions(doc["assistant_id"])
             if doc["metadata"].get("created_by") != "system" else [doc])
    found = [v for v in found if all(v["metadata"].get(k) == w
                                     for k, w in (body.get("metadata") or {}).items())]
    offset, limit = int(body.get("offset") or 0), int(body.get("limit") or 10)
    return JSONResponse(found[offset:offset + limit])


async def set_latest(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    doc = await _own(request, "update")
    latest = await s.records.set_latest_assistant(doc["assistant_id"], int(body["version"]))
    if latest is None:
        raise HTTPException(404, f"Assistant {doc['assistant_id']} has no version "
                            f"{body['version']}")
    return JSONResponse(latest)


async def get(request: Request) -> JSONResponse:
    return JSONResponse((await scoped(request))[1])


async def get_graph(request: Request) -> JSONResponse:
    g, _ = await scoped(request)
    return JSONResponse(jsonable(g.graph.get_graph(xray=_xray(request)).to_json()))


def _xray(request: Request) -> bool | int:
    """The `xray` query parameter, as LangGraph's API reads it: a boolean or a depth."""
    raw = request.query_params.get("xray", "false").strip().lower()
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return int(raw)
    except ValueError:
        raise HTTPException(422, f"xray must be true, false or a depth, not {raw!r}") from None


async def get_schemas(request: Request) -> JSONResponse:
    g, _ = await scoped(request)
    graph = g.graph
    return JSONResponse({
        "graph_id": g.graph_id, "input_schema": graph.get_input_jsonschema(),
        "output_schema": graph.get_output_jsonschema(),
        "state_schema": graph.get_output_jsonschema(),
        "config_schema": {}, "context_schema": graph.get_context_jsonschema(),
    })


async def get_subgraphs(request: Request) -> JSONResponse:
    await scoped(request)
    return JSONResponse({})


routes = [
    Route("/assistants", create, methods=["POST"]),
    Route("/assistants/search", search, methods=["POST"]),
    Route("/assistants/count", count, methods=["POST"]),
    Route("/assistants/{assistant_id}", get, methods=["GET"]),
    Route("/assistants/{assistant_id}", update, methods=["PATCH"]),
    Route("/assistants/{assistant_id}", delete, methods=["DELETE"]),
    Route("/assistants/{assistant_id}/versions", versions, methods=["POST"]),
    Route("/assistants/{assistant_id}/latest", set_latest, methods=["POST"]),
    Route("/assistants/{assistant_id}/graph", get_graph, methods=["GET"]),
    Route("/assistants/{assistant_id}/schemas", get_schemas, methods=["GET"]),
    Route("/assistants/{assistant_id}/subgraphs", get_subgraphs, methods=["GET"]),
]
