"""Who may use the dashboard: beyond this machine only the holder of its token; and only
same-origin JSON may steer runs, so that another site open in the browser cannot."""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

TOKEN_IN_QUERY = re.compile(r"(?<=[?&]token=)[^&\s]*")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_HEADER = "x-arqgraph-token"
TOKEN_ENV = "ARQGRAPH_DASHBOARD_TOKEN"


class DashboardAccessError(ValueError):
    """The dashboard would listen beyond this machine without a token."""


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to listen beyond localhost without a token: the page shows state, inputs and
    tracebacks, which are nobody else's business."""
    if host not in LOCAL_HOSTS and not token:
        raise DashboardAccessError(
            f"the dashboard listens on {host}, beyond this machine: give it a token "
            f"(--token or {TOKEN_ENV}) that its users pass as ?token= or the "
            f"{TOKEN_HEADER} header")


def default_token() -> str | None:
    """The token of the settings (ARQGRAPH_DASHBOARD_TOKEN, or its line in .env)."""
    from arqgraph.settings import Settings

    return Settings.from_env().dashboard_token or None


def given_token(request: Request) -> str:
    """The token a request carries: its header, a bearer authorization, or `?token=`."""
    bearer = request.headers.get("authorization", "")
    return (request.headers.get(TOKEN_HEADER)
            or (bearer[7:] if bearer.lower().startswith("bearer ") else "")
            or request.query_params.get("token", ""))


def _host_name(header: str) -> str:
    if header.startswith("["):  # [::1]:8080
        return header[1:header.find("]")]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class AccessMiddleware(BaseHTTPMiddleware):
    """Checks every request: its token when there is one; without, that it names this
    machine (a page of another site that renamed itself to 127.0.0.1, DNS rebinding, must
    not read the pool)."""

    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.token is not None:
            if not hmac.compare_digest(given_token(request).encode(), self.token.encode()):
                return JSONResponse({"detail": "a valid token is needed (?token= or the "
                                     f"{TOKEN_HEADER} header)"}, 401)
        elif _host_name(request.headers.get("host", "")) not in LOCAL_HOSTS:
            return JSONResponse({"detail": "this dashboard answers localhost only"}, 403)
        return await call_next(request)


class HideToken(logging.Filter):
    """Masks `?token=` in the access log's request lines: logs are read by more people than
    should hold the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(TOKEN_IN_QUERY.sub("***", a) if isinstance(a, str) else a
                                for a in record.args)
        return True
