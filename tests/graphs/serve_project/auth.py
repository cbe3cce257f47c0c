"""An auth hook as LangGraph's `auth.path` names one: admits requests carrying the bearer token
"let-me-in" (as user "ada"), refuses the others with the handler's own 401."""

from __future__ import annotations

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    if authorization != "Bearer let-me-in":
        raise Auth.exceptions.HTTPException(status_code=401, detail="who are you?")
    return "ada"
