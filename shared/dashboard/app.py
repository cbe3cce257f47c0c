"""The dashboard's ASGI app: one static page (`static/`) and the JSON it polls, each endpoint
an `arqgraph.admin.Admin` call, so the page shows what `arqgraph runs|status|state|workers`
print. Cancel and resume answer 403 unless the dashboard was started with `--allow-control`."""

from __future__ import annotations

import contextlib
import html
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from arqgraph.admin import Admin
from arqgraph.client import CONNECT_TIMEOUT, Client
from arqgraph.dashboard.access import AccessMiddleware
from arqgraph.errors import ThreadBusyError, UnknownGraphError, UnknownRunError

RUNS_SHOWN = 50  # runs listed by default


class PoolJSON(JSONResponse):
    """JSON of whatever a state holds: what JSON cannot say is shown as its repr."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=repr, ensure_ascii=False).encode()


def admin(request: Request) -> Admin:
    return request.app.state.admin  # type: ignore[no-any-return]


async def index(request: Request) -> HTMLResponse:
    """The page, its assets' URLs carrying the token it was opened with."""
    token = request.query_params.get("token", "")
    query = html.escape(f"?token={quote(token)}") if token else ""
    page = resources.files("arqgraph.dashboard").joinpath("static/index.html").read_text()
    return HTMLResponse(page.replace("{{query}}", query), headers={"cache-control": "no-store"})


async def overview(request: Request) -> PoolJSON:
    a = admin(request)
    return PoolJSON({
        "workers": await a.workers(), "orchestrators": await a.orchestrators(),
        "graphs": await a.graphs(), "queues": await a.queues(), "problems": await a.health(),
        "control": request.app.state.allow_control,
    })


async def runs(request: Request) -> PoolJSON:
    q = request.query_params
    return PoolJSON(await admin(request).runs(q.get("graph") or None, q.get("status") or None,
                                              int(q.get("limit") or RUNS_SHOWN)))


async def run(request: Request) -> PoolJSON:
    return PoolJSON(await admin(request).status(request.path_params["run_id"]))


async def timeline(request: Request) -> PoolJSON:
    return PoolJSON(await admin(request).timeline(request.path_params["run_id"]))


async def events(request: Request) -> PoolJSON:
    return PoolJSON(await admin(request).events(request.path_params["run_id"]))


async def state(request: Request) -> PoolJSON:
    history = request.query_params.get("history", "") not in ("", "0", "false")
    return PoolJSON(await admin(request).state(request.path_params["thread_id"], history))


async def drawing(request: Request) -> PoolJSON:
    return PoolJSON(await admin(request).drawing(request.path_params["graph"]))


async def _control_body(request: Request) -> dict[str, Any] | Response:
    """The body of a steering request, or why it is refused: control off (403), or not
    same-origin JSON (415: a form another site posts is never JSON without a CORS preflight,
    which this app does not grant)."""
    if not request.app.state.allow_control:
        return PoolJSON({"detail": "control is off: start the dashboard with "
                         "--allow-control to cancel and resume runs"}, 403)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return PoolJSON({"detail": "send the request as application/json"}, 415)
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        return PoolJSON({"detail": f"not valid JSON: {exc}"}, 400)
    return body if isinstance(body, dict) else {}


async def cancel(request: Request) -> Response:
    body = await _control_body(request)
    if isinstance(body, Response):
        return body
    return PoolJSON(await admin(request).cancel(request.path_params["run_id"]))


async def resume(request: Request) -> Response:
    """Answer the thread's pending interrupt with the body's `value`; the new run's id."""
    body = await _control_body(request)
    if isinstance(body, Response):
        return body
    if "value" not in body:
        return PoolJSON({"detail": "give the answer as the body's value"}, 400)
    handle = await admin(request).resume(request.path_params["thread_id"], body["value"],
                                         body.get("graph") or None)
    return PoolJSON({"run_id": handle.run_id, "thread_id": request.path_params["thread_id"]})


def _error(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        return PoolJSON({"detail": str(exc)}, status)
    return handle


def build_app(redis_url: str, *, allow_control: bool = False,
              token: str | None = None,
              connect_timeout: float | None = CONNECT_TIMEOUT) -> Starlette:
    """The app over the pool at `redis_url` (connected at startup)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = await Client.connect(redis_url, ready_timeout=0, connect_timeout=connect_timeout)
        app.state.admin = Admin(client)
        try:
            yield
        finally:
            await client.close()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/overview", overview),
            Route("/api/runs", runs),
            Route("/api/runs/{run_id}", run),
            Route("/api/runs/{run_id}/timeline", timeline),
            Route("/api/runs/{run_id}/events", events),
            Route("/api/runs/{run_id}/cancel", cancel, methods=["POST"]),
            Route("/api/threads/{thread_id}/state", state),
            Route("/api/threads/{thread_id}/resume", resume, methods=["POST"]),
            Route("/api/graphs/{graph}/drawing", drawing),
            Mount("/static", StaticFiles(packages=[("arqgraph.dashboard", "static")])),
        ],
        middleware=[Middleware(AccessMiddleware, token=token)], lifespan=lifespan,
        exception_handlers={UnknownRunError: _error(404), UnknownGraphError: _error(404),
                            ThreadBusyError: _error(409), ValueError: _error(400)},
    )
    app.state.allow_control = allow_control
    return app


def serve(redis_url: str, host: str, port: int, *, allow_control: bool = False,
          token: str | None = None, connect_timeout: float | None = CONNECT_TIMEOUT) -> int:
    """Serve the dashboard until stopped (SIGINT/SIGTERM end it gracefully)."""
    import uvicorn

    from arqgraph.dashboard.access import HideToken, check_exposure

    check_exposure(host, token)
    app = build_app(redis_url, allow_control=allow_control, token=token,
                    connect_timeout=connect_timeout)
    config = uvicorn.Config(app, host=host, port=port, log_level="info",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)  # (its config sets up the loggers: filter them after)
    logging.getLogger("uvicorn.access").addFilter(HideToken())
    server.run()
    return 0
