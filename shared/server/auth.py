"""Who may call the server: an API key (`--api-key`), and `langgraph.json`'s `auth.path`, a
`langgraph_sdk.Auth` whose `@auth.authenticate` handler admits a request (or raises its
`HTTPException`); its `@auth.on` handlers scope what each user sees (`authz`). `/ok` stays
open for load balancers' health checks, and the server's own calls to a webhook that is one
of its paths pass."""

from __future__ import annotations

import hmac
import inspect
from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from arqgraph.server.authz import User

LOOPBACK = "arqgraph.loopback"  # the scope's mark of the server's own call (`webhooks`)

OPEN_PATHS = ("/ok",)


class AuthMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, api_key: str | None = None, auth: Any = None) -> None:
        super().__init__(app)
        self.api_key = api_key
        self.authenticate: Any = getattr(auth, "_authenticate_handler", None)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if (request.url.path in OPEN_PATHS or request.method == "OPTIONS"
                or request.scope.get(LOOPBACK)):  # (a webhook's call to a path of this server)
            return await call_next(request)
        if self.api_key is not None:
            given = request.headers.get("x-api-key", "")
            if not hmac.compare_digest(given.encode(), self.api_key.encode()):
                return JSONResponse({"detail": "Invalid or missing x-api-key header"}, 401)
        if self.authenticate is not None:
            try:
                request.scope["user"] = User(await self._user(request))
            except Exception as exc:
                status = int(getattr(exc, "status_code", 401))
                detail = getattr(exc, "detail", None) or str(exc) or "Unauthorized"
                return JSONResponse({"detail": detail}, status)
        return await call_next(request)

    async def _user(self, request: Request) -> Any:
        """Call the handler with the arguments it names, as LangGraph's server does."""
        offered = {
            "request": request, "method": request.method, "path": request.url.path,
            "headers": {k.encode(): v.encode() for k, v in request.headers.items()},
            "authorization": request.headers.get("authorization"),
            "query_params": dict(request.query_params), "path_params": request.path_params,
            "body": await request.body(),
        }
        wanted = inspect.signature(self.authenticate).parameters
        user = self.authenticate(**{k: v for k, v in offered.items() if k in wanted})
        return await user if inspect.isawaitable(user) else user
