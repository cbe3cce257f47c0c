"""Assistants: one default assistant per served graph, with a UUID fixed by the graph id; the
graph id is accepted wherever an assistant id is."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from arqgraph.server.config import ServedGraph
from arqgraph.server.context import body_of, graph_for, served
from arqgraph.server.shapes import jsonable

EPOCH = "2025-01-01T00:00:00+00:00"  # a default assistant exists as long as its graph


def assistant_json(g: ServedGraph) -> dict[str, Any]:
    return {"assistant_id": g.assistant_id, "graph_id": g.graph_id, "name": g.graph_id,
            "description": None, "config": {}, "context": {},
            "metadata": {"created_by": "system"}, "version": 1,
            "created_at": EPOCH, "updated_at": EPOCH}


async def search(request: Request) -> JSONResponse:
    body = await body_of(request)
    found = [assistant_json(g) for g in served(request).config.graphs.values()
             if body.get("graph_id") in (None, g.graph_id)
             and all(assistant_json(g)["metadata"].get(k) == v
                     for k, v in (body.get("metadata") or {}).items())]
    offset, limit = int(body.get("offset") or 0), int(body.get("limit") or 10)
    return JSONResponse(found[offset:offset + limit])


async def count(request: Request) -> JSONResponse:
    body = await body_of(request)
    return JSONResponse(sum(1 for g in served(request).config.graphs.values()
                            if body.get("graph_id") in (None, g.graph_id)))


async def get(request: Request) -> JSONResponse:
    return JSONResponse(assistant_json(graph_for(served(request),
                                                 request.path_params["assistant_id"])))


async def get_graph(request: Request) -> JSONResponse:
    g = graph_for(served(request), request.path_params["assistant_id"])
    return JSONResponse(jsonable(g.graph.get_graph().to_json()))


async def get_schemas(request: Request) -> JSONResponse:
    g = graph_for(served(request), request.path_params["assistant_id"])
    graph = g.graph
    return JSONResponse({
        "graph_id": g.graph_id, "input_schema": graph.get_input_jsonschema(),
        "output_schema": graph.get_output_jsonschema(),
        "state_schema": graph.get_output_jsonschema(),
        "config_schema": {}, "context_schema": graph.get_context_jsonschema(),
    })


async def get_subgraphs(request: Request) -> JSONResponse:
    graph_for(served(request), request.path_params["assistant_id"])
    return JSONResponse({})


routes = [
    Route("/assistants/search", search, methods=["POST"]),
    Route("/assistants/count", count, methods=["POST"]),
    Route("/assistants/{assistant_id}", get, methods=["GET"]),
    Route("/assistants/{assistant_id}/graph", get_graph, methods=["GET"]),
    Route("/assistants/{assistant_id}/schemas", get_schemas, methods=["GET"]),
    Route("/assistants/{assistant_id}/subgraphs", get_subgraphs, methods=["GET"]),
]
