"""`@auth.on` handlers of a `langgraph_sdk.Auth`, as LangGraph's server runs them: for each
resource and action the most specific handler (`auth.on.threads.create`, then
`auth.on.threads`, then `auth.on("*", action)`-style, then `@auth.on`) sees the request's value
and may add to its metadata (kept on the thread or run made); it returns None or True (allowed),
False (403), or a filter dict that the thing touched must match ({"owner": "alice"},
{"tags": {"$contains": "x"}}, {"$or": [...]}), else it reads as not found."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

Filters = dict[str, Any]


class User:
    """What `@auth.authenticate` returned, as LangGraph's `BaseUser`: a string (the identity),
    a dict with "identity", an object with `.identity`, or a (permissions, user) pair."""

    def __init__(self, raw: Any) -> None:
        perms: Any = None
        if isinstance(raw, tuple) and len(raw) == 2:
            perms, raw = raw
        self._raw = {"identity": raw} if isinstance(raw, str) else raw
        found = perms if perms is not None else self._get("permissions", [])
        self._permissions = list(found or [])

    def _get(self, name: str, default: Any = None) -> Any:
        if isinstance(self._raw, dict):
            return self._raw.get(name, default)
        return getattr(self._raw, name, default)

    @property
    def identity(self) -> str:
        return str(self._get("identity"))

    @property
    def permissions(self) -> Sequence[str]:
        return self._permissions

    @property
    def is_authenticated(self) -> bool:
        return bool(self._get("is_authenticated", True))

    @property
    def display_name(self) -> str:
        return str(self._get("display_name", self.identity))

    def __getitem__(self, key: str) -> Any:
        return self._raw[key] if isinstance(self._raw, dict) else getattr(self._raw, key)

    def __contains__(self, key: str) -> bool:
        return key in self._raw if isinstance(self._raw, dict) else hasattr(self._raw, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw if isinstance(self._raw, dict) else vars(self._raw))


def _handler(auth: Any, resource: str, action: str) -> Any:
    handlers = getattr(auth, "_handlers", {})
    for key in ((resource, action), (resource, "*"), ("*", action), ("*", "*")):
        if handlers.get(key):
            return handlers[key][-1]  # (the last one defined)
    found = getattr(auth, "_global_handlers", None)
    return found[-1] if found else None


async def authorize(request: Request | None, resource: str, action: str,
                    value: dict[str, Any]) -> Filters | None:
    """Run the handler for (resource, action) on `value` (which it may change); its filters,
    None when everything is allowed (or no request: the server's own, a cron's); raises 403
    (or the handler's HTTPException)."""
    if request is None:
        return None
    auth, user = request.app.state.served.config.auth, request.scope.get("user")
    handler = _handler(auth, resource, action) if auth is not None else None
    if handler is None or not isinstance(user, User):
        return None
    from langgraph_sdk.auth.types import AuthContext

    ctx = AuthContext(user=user, permissions=list(user.permissions),
                      resource=resource, action=action)  # type: ignore[arg-type]
    try:
        result = handler(ctx=ctx, value=value)
        result = await result if inspect.isawaitable(result) else result
    except AssertionError as exc:
        raise HTTPException(403, str(exc)) from exc
    except Exception as exc:
        if hasattr(exc, "status_code") and hasattr(exc, "detail"):
            raise HTTPException(exc.status_code, exc.detail) from exc
        raise
    if result is None or result is True:
        return None
    if result is False:
        raise HTTPException(403, "Forbidden")
    if not isinstance(result, dict):
        raise HTTPException(500, "Auth handler returned invalid result. Expected filter dict, "
                            f"None, or boolean. Got {type(result)} instead.")
    return result or None


def matches(metadata: dict[str, Any], filters: Filters | None) -> bool:
    """Whether `metadata` passes a handler's filters ($eq, $contains, $or, $and, equality)."""
    if not filters:
        return True
    for key, want in filters.items():
        if key == "$or":
            if not any(matches(metadata, group) for group in want):
                return False
        elif key == "$and":
            if not all(matches(metadata, group) for group in want):
                return False
        elif isinstance(want, dict) and want:
            op, arg = next(iter(want.items()))
            have = metadata.get(key)
            if op == "$contains":
                needed = arg if isinstance(arg, list) else [arg]
                if not isinstance(have, list) or any(x not in have for x in needed):
                    return False
            elif key not in metadata or have != arg:  # $eq
                return False
        elif key not in metadata or metadata[key] != want:
            return False
    return True


async def check(request: Request | None, resource: str, action: str, value: dict[str, Any],
                metadata: dict[str, Any], what: str) -> None:
    """Authorize, then 404 (`what` not found) unless `metadata` passes the filters: a user
    never learns of what is not theirs."""
    if not matches(metadata, await authorize(request, resource, action, value)):
        raise HTTPException(404, f"{what} not found")
