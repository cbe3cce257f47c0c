"""`arqgraph serve`: LangGraph's platform HTTP API (what `langgraph_sdk` clients, `RemoteGraph`
and chat front ends speak) over a cluster. The process keeps no state: runs, threads and their
records are the cluster's, so any number of servers can run behind a load balancer."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
from collections.abc import AsyncIterator
from typing import Any, cast

import pydantic
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from arqgraph.client import CONNECT_TIMEOUT, Client
from arqgraph.errors import InvalidInputError, UnknownGraphError
from arqgraph.server import (
    assistants,
    crons,
    leaving,
    runs,
    start,
    store,
    thread_stream,
    threads,
    webhooks,
)
from arqgraph.server.auth import AuthMiddleware
from arqgraph.server.config import ServeConfig
from arqgraph.server.context import Served
from arqgraph.server.duties import Duties, Duty, duty_loop
from arqgraph.server.gate import Gate
from arqgraph.server.records import Records
from arqgraph.settings import Settings
from arqgraph.storage.long_term import RedisStore

UNPROCESSABLE = (InvalidInputError, UnknownGraphError, pydantic.ValidationError, ValueError,
                 TypeError)


async def do(s: Served, duty: Duty) -> None:
    """A duty taken over from another server (or due): what its kind says."""
    if duty.kind == webhooks.WEBHOOK:
        await webhooks.deliver(s, duty)
    elif duty.kind == start.DELAYED:
        await start.fire(s, duty)
    elif duty.kind == leaving.WATCH:
        await leaving.lapsed(s, duty)
    elif duty.kind == crons.DROP:
        await crons.drop(s, duty)
    else:
        raise ValueError(f"unknown duty {duty.id!r}")


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def info(request: Request) -> JSONResponse:
    return JSONResponse({"version": "arqgraph", "langgraph_py_version": None,
                         "flags": {"assistants": True, "crons": True, "langsmith": False}})


async def unprocessable(request: Request, exc: Exception) -> JSONResponse:
    """Bad input in a body (a state the graph refuses, an unknown node): 422 with the reason."""
    return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, status_code=422)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """An HTTP error as LangGraph's server sends it: JSON with the reason under `detail`."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                        headers=exc.headers)


def build_app(config: ServeConfig, redis_url: str, api_key: str | None = None,
              connect_timeout: float | None = CONNECT_TIMEOUT) -> Starlette:
    """The API's app; with `http.app`, that app serving its own routes and then the API's."""
    served_app: list[Starlette] = []  # (what a webhook's path is called on: set below)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = await Client.connect(redis_url, connect_timeout=connect_timeout)
        settings = Settings.from_env()
        s = app.state.served = Served(
            config, client, Records(client.redis),
            RedisStore(client.redis, index=cast(Any, config.store_index)),
            Duties(client.redis, lease=settings.duty_lease), settings.retention,
            gate=Gate(settings.serve_gather), app=served_app[0])
        loops = [asyncio.create_task(crons.cron_loop(s)),
                 asyncio.create_task(duty_loop(s.duties, lambda d: do(s, d), s.spawn,
                                               crons.TICK))]
        try:
            yield
        finally:
            for task in (*loops, *s.background):  # (duties, cancels)
                task.cancel()
            await asyncio.gather(*s.background, return_exceptions=True)
            await s.duties.hand_over()
            await client.close()

    auth = (Middleware(AuthMiddleware, api_key=api_key, auth=config.auth)
            if api_key is not None or config.auth is not None else None)
    cors = cors_middleware(config.cors) if config.cors else None
    api = Starlette(
        # (the runs' routes first: Starlette tries each route's pattern in turn, per request)
        routes=[*runs.routes, *threads.routes, *thread_stream.routes, *assistants.routes,
                *crons.routes, *store.routes, Route("/ok", ok), Route("/info", info)],
        middleware=[m for m in (auth, None if config.app else cors) if m is not None],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error,
                            **{cls: unprocessable for cls in UNPROCESSABLE}},
    )
    served_app.append(api if config.app is None else with_custom_app(
        config.app, api, auth if config.custom_route_auth else None, cors))
    return served_app[0]


def cors_middleware(cors: dict[str, Any]) -> Middleware:
    """`http.cors` as Starlette's CORS middleware takes it."""
    return Middleware(CORSMiddleware, **{
        "allow_origins": cors.get("allow_origins", []),
        "allow_methods": cors.get("allow_methods", ["*"]),
        "allow_headers": cors.get("allow_headers", ["*"]),
        "allow_credentials": cors.get("allow_credentials", False),
        "expose_headers": cors.get("expose_headers", ["Location", "Content-Location"])})


def with_custom_app(custom: Starlette, api: Starlette, auth: Middleware | None,
                    cors: Middleware | None) -> Starlette:
    """`http.app` serving its routes, then the API's, as LangGraph's server merges them: its
    middleware and CORS wrap every request, its lifespan runs within the API's, and the auth
    hook guards its routes only when `http.enable_custom_route_auth` asks. The app is taken
    over, as there; its own routes, middleware and lifespan are kept aside, so that building
    the server again in this process (a test) starts from them."""
    if not hasattr(custom.state, CUSTOM_OWN):
        setattr(custom.state, CUSTOM_OWN, (list(custom.router.routes),
                                           list(custom.user_middleware),
                                           custom.router.lifespan_context))
    routes, middleware, inner = getattr(custom.state, CUSTOM_OWN)
    if auth is not None:
        routes = [copy.copy(route) for route in routes]
        for route in routes:
            cls, args, kwargs = auth
            route.app = cls(route.app, *args, **kwargs)
    custom.router.routes = [*routes, Mount("", app=api)]
    custom.user_middleware = [*middleware, *([cors] if cors is not None else [])]
    custom.middleware_stack = None  # (built again, with these, on its first request)

    @contextlib.asynccontextmanager
    async def both(app: Starlette) -> AsyncIterator[Any]:
        async with api.router.lifespan_context(api), inner(app) as state:
            yield state

    custom.router.lifespan_context = both
    return custom


CUSTOM_OWN = "arqgraph_custom_app"  # (the custom app's state key for what it came with)


KEEP_ALIVE = 75  # seconds an idle client connection is kept
SERVE_ARGS = "ARQGRAPH_SERVE_ARGS"
"""Where `serve` leaves its arguments for `app_from_env` in each of uvicorn's worker processes."""


def app_from_env() -> Starlette:
    """The app of `serve`'s arguments (uvicorn's factory, called in each worker process)."""
    from arqgraph.cli import tune_gc
    from arqgraph.server.config import load_config

    tune_gc()  # (uvicorn's worker processes do not start through the CLI's main)
    args = json.loads(os.environ[SERVE_ARGS])
    return build_app(load_config(args["config"], args["specs"]), args["redis"], args["api_key"],
                     args["connect_timeout"])


def serve(config_path: str | None, specs: list[str], redis_url: str, host: str,
          port: int, api_key: str | None = None, workers: int = 1,
          access_log: bool = False, connect_timeout: float | None = CONNECT_TIMEOUT) -> int:
    """Load the graphs and serve them until stopped (SIGINT/SIGTERM end it gracefully).

    `workers` > 1: that many server processes share the port (uvicorn's workers), for a
    machine with cores to spare; each is as stateless as one. The access log is off unless
    asked for: a line per request is a tenth of a small run's cost here. Idle connections are
    kept 75 s, longer than clients (httpx: 5 s) and load balancers keep them, so a client
    never sends on a connection the server is closing."""
    import uvicorn

    os.environ[SERVE_ARGS] = json.dumps({"config": config_path, "specs": specs,
                                         "redis": redis_url, "api_key": api_key,
                                         "connect_timeout": connect_timeout})
    app: Any = app_from_env()  # (with workers too: a bad config fails here, once)
    if workers > 1:
        app = "arqgraph.server.app:app_from_env"
    uvicorn.run(app, factory=workers > 1, host=host, port=port, workers=workers,
                log_level="info", access_log=access_log, timeout_keep_alive=KEEP_ALIVE,
                timeout_graceful_shutdown=5)
    return 0
