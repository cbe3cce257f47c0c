"""`@auth.on` handlers as LangGraph's docs write them: two users by bearer token; whatever a
user makes is marked theirs, and they see only what is theirs; their store items live under
their name. Nobody deletes threads."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()
USERS = {"Bearer alice-token": "alice", "Bearer bob-token": "bob"}


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    if authorization not in USERS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="who are you?")
    return USERS[authorization]


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, Any]:
    metadata = value.setdefault("metadata", {})
    metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads.delete
async def no_deletes(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> bool:
    return False


@auth.on.store()
async def own_namespace(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> None:
    """LangGraph's docs' store handler: a user's items live under their identity."""
    namespace = tuple(value.get("namespace") or ())
    assert namespace[:1] == (ctx.user.identity,), "not your namespace"
