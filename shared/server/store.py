"""The store endpoints over the cluster's long-term memory store (`RedisStore`): the items
nodes read and write with `get_store()`, as LangGraph's server shows them."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arqgraph.server.context import body_of, served
from arqgraph.server.shapes import jsonable


def _namespace(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        return tuple(raw.split(".")) if raw else ()
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise HTTPException(422, "namespace must be a list of strings")
    return tuple(raw)


def item_json(item: Any) -> dict[str, Any]:
    shown = {"namespace": list(item.namespace), "key": item.key, "value": jsonable(item.value),
             "created_at": item.created_at.isoformat(), "updated_at": item.updated_at.isoformat()}
    if hasattr(item, "score"):
        shown["score"] = item.score
    return shown


async def put_item(request: Request) -> Response:
    body = await body_of(request)
    if not isinstance(body.get("key"), str) or not isinstance(body.get("value"), dict):
        raise HTTPException(422, "put_item needs a string key and an object value")
    ttl = body.get("ttl")
    await served(request).store.aput(_namespace(body.get("namespace")), body["key"],
                                     body["value"], index=body.get("index"),
                                     **({"ttl": ttl} if ttl is not None else {}))
    return Response(status_code=204)


async def get_item(request: Request) -> JSONResponse:
    key = request.query_params.get("key")
    if not key:
        raise HTTPException(422, "get_item needs a key")
    item = await served(request).store.aget(
        _namespace(request.query_params.get("namespace", "")), key)
    if item is None:
        raise HTTPException(404, f"Item {key} not found")
    return JSONResponse(item_json(item))


async def delete_item(request: Request) -> Response:
    body = await body_of(request)
    if not isinstance(body.get("key"), str):
        raise HTTPException(422, "delete_item needs a string key")
    await served(request).store.adelete(_namespace(body.get("namespace")), body["key"])
    return Response(status_code=204)


async def search_items(request: Request) -> JSONResponse:
    body = await body_of(request)
    items = await served(request).store.asearch(
        _namespace(body.get("namespace_prefix") or []), query=body.get("query"),
        filter=body.get("filter"), limit=int(body.get("limit") or 10),
        offset=int(body.get("offset") or 0))
    return JSONResponse({"items": [{**item_json(i), "score": getattr(i, "score", None)}
                                   for i in items]})


async def list_namespaces(request: Request) -> JSONResponse:
    body = await body_of(request)
    found = await served(request).store.alist_namespaces(
        prefix=_namespace(body["prefix"]) if body.get("prefix") else None,
        suffix=_namespace(body["suffix"]) if body.get("suffix") else None,
        max_depth=body.get("max_depth"), limit=int(body.get("limit") or 100),
        offset=int(body.get("offset") or 0))
    return JSONResponse({"namespaces": [list(ns) for ns in found]})


routes = [
    Route("/store/items", put_item, methods=["PUT"]),
    Route("/store/items", get_item, methods=["GET"]),
    Route("/store/items", delete_item, methods=["DELETE"]),
    Route("/store/items/search", search_items, methods=["POST"]),
    Route("/store/namespaces", list_namespaces, methods=["POST"]),
]
