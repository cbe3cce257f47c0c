"""A custom app as `langgraph.json`'s `http.app` names one (`langgraph.more.json`): its routes
are served beside the API's. `POST /hooks/done` takes the calls of webhooks that are this path
(kept in the server's memory, with the header the project adds to them), `GET /hooks/seen`
lists them; its lifespan marks the app started, and its middleware tags every response, the
API's too."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

calls: list[dict[str, Any]] = []


async def done(request: Request) -> JSONResponse:
    calls.append({"body": await request.json(), "x-hook": request.headers.get("x-hook")})
    return JSONResponse({"ok": True})


async def seen(request: Request) -> JSONResponse:
    return JSONResponse({"calls": calls, "started": request.app.state.started})


class Tagged(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-custom-app"] = "yes"
        return response


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.started = True
    yield


app = Starlette(routes=[Route("/hooks/done", done, methods=["POST"]),
                        Route("/hooks/seen", seen)],
                middleware=[Middleware(Tagged)], lifespan=lifespan)
