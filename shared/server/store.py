"""The store endpoints over the cluster's long-term memory store (`RedisStore`): the items
nodes read and write with `get_store()`, as LangGraph's server shows them. As there, an
`@auth.on.store` handler sees each request's namespace (and key, value, ...), may change it
(to scope a user to their own) or refuse; a search's returned filter narrows the items."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arqgraph.server.authz import authorize
from arqgraph.server.context import body_of, served
from arqgraph.server.shapes import jsonable


def _namespace(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        return tuple(raw.split(".")) if raw else ()
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise HTTPException(422, "namespace must be a list of strings")
    return tuple(raw)


async def _allowed(request: Request, action: str, value: dict[str, Any]) -> dict[str, Any]:
    """`value` once the store's handler for `action` passed it (its namespace maybe changed);
    its filter, if any, under "auth_filter"."""
    found = await authorize(request, "store", action, value)
    for name in ("namespace", "suffix"):
        if value.get(name) is not None:
            value[name] = _namespace(list(value[name]))
    return {**value, "auth_filter": found}


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
    v = await _allowed(request, "put", {
        "namespace": _namespace(body.get("namespace")), "key": body["key"],
        "value": body["value"], "index": body.get("index"), "ttl": body.get("ttl")})
    await served(request).store.aput(v["namespace"], v["key"], v["value"], index=v["index"],
                                     **({"ttl": v["ttl"]} if v["ttl"] is not None else {}))
    return Response(status_code=204)


async def get_item(request: Request) -> JSONResponse:
    key = request.query_params.get("key")
    if not key:
        raise HTTPException(422, "get_item needs a key")
    v = await _allowed(request, "get", {
        "namespace": _namespace(request.query_params.get("namespace", "")), "key": key})
    item = await served(request).store.aget(v["namespace"], v["key"])
    if item is None:
        raise HTTPException(404, f"Item {key} not found")
    return JSONResponse(item_json(item))


async def delete_item(request: Request) -> Response:
    body = await body_of(request)
    if not isinstance(body.get("key"), str):
        raise HTTPException(422, "delete_item needs a string key")
    v = await _allowed(request, "delete", {"namespace": _namespace(body.get("namespace")),
                                           "key": body["key"]})
    await served(request).store.adelete(v["namespace"], v["key"])
    return Response(status_code=204)


async def search_items(request: Request) -> JSONResponse:
    body = await body_of(request)
    v = await _allowed(request, "search", {
        "namespace": _namespace(body.get("namespace_prefix") or []),
        "filter": body.get("filter"), "limit": int(body.get("limit") or 10),
        "offset": int(body.get("offset") or 0), "query": body.get("query")})
    wanted, narrowed = dict(v["filter"] or {}), dict(v["auth_filter"] or {})
    if any(k in wanted and wanted[k] != narrowed[k] for k in narrowed):
        return JSONResponse({"items": []})  # (the two filters contradict each other)
    items = await served(request).store.asearch(
        v["namespace"], query=v["query"], filter={**wanted, **narrowed} or None,
        limit=v["limit"], offset=v["offset"])
    return JSONResponse({"items": [{**item_json(i), "score": getattr(i, "score", None)}
                                   for i in items]})


async def list_namespaces(request: Request) -> JSONResponse:
    body = await body_of(request)
    v = await _allowed(request, "list_namespaces", {
        "namespace": _namespace(body["prefix"]) if body.get("prefix") else None,
        "suffix": _namespace(body["suffix"]) if body.get("suffix") else None,
        "max_depth": body.get("max_depth"), "limit": int(body.get("limit") or 100),
        "offset": int(body.get("offset") or 0)})
    found = await served(request).store.alist_namespaces(
        prefix=v["namespace"], suffix=v["suffix"], max_depth=v["max_depth"],
        limit=v["limit"], offset=v["offset"])
    return JSONResponse({"namespaces": [list(ns) for ns in found]})


routes = [
    Route("/store/items", put_item, methods=["PUT"]),
    Route("/store/items", get_item, methods=["GET"]),
    Route("/store/items", delete_item, methods=["DELETE"]),
    Route("/store/items/search", search_items, methods=["POST"]),
    Route("/store/namespaces", list_namespaces, methods=["POST"]),
]
