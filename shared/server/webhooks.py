"""A run's `webhook`: when the run ends, a server POSTs the run (as `runs.get` shows it) with
its status, times and final `values` (and `error` if it failed), as LangGraph's server does.
A webhook that is a path (`/my-hook`) is a route of the server itself, a custom one of
`http.app` say: called in the process, past the auth hook, as LangGraph's loopback client
does; so, as there, only a project whose `webhooks.url.disable_loopback` is false takes one.

The call is a duty (`arqgraph.server.duties`): the server that started the run watches for its
end and calls; if that server stops first, another takes the duty over once its lease lapses
and calls. So the receiver is called once, or, if a server is killed between its call and its
record of it, again with the same run."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from arqgraph.server.auth import LOOPBACK
from arqgraph.server.config import ServeConfig
from arqgraph.server.context import Served
from arqgraph.server.duties import Duty, done_after
from arqgraph.server.shapes import RUN_STATUSES, now_iso

TIMEOUT = 30.0  # seconds a webhook's receiver has to answer
WEBHOOK = "webhook"
LOOPBACK_REFUSED = (
    "Loopback webhooks (relative URLs) are disabled by default: they are called in the "
    "server's process, past the auth hook. Set webhooks.url.disable_loopback to false in "
    "langgraph.json to take them, only when you control the routes they can reach.")


def check_webhook(url: Any, config: ServeConfig) -> str | None:
    """The body's webhook: an absolute http(s) URL, or a path of this server's if the project
    takes those; 422 otherwise, as LangGraph's server answers."""
    if url is None:
        return None
    if str(url).startswith("/"):
        if not config.loopback_webhooks:
            raise HTTPException(422, LOOPBACK_REFUSED)
        return str(url)
    parsed = urlparse(str(url))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise HTTPException(422, f"webhook must be an absolute http(s) URL or a path, not "
                            f"{url!r}")
    return str(url)


def loopback(app: ASGIApp) -> ASGIApp:
    """`app` called by the server itself: its requests are marked, so the auth middleware
    lets them through (nothing from outside can set a scope's key)."""
    async def marked(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, LOOPBACK: True}, receive, send)

    return marked


async def post(app: ASGIApp, url: str, payload: dict[str, Any],
               headers: dict[str, str]) -> None:
    """POST the payload to the webhook: over the network, or to `app` for a path; raises
    if the receiver refuses."""
    import httpx

    transport = httpx.ASGITransport(loopback(app)) if url.startswith("/") else None
    async with httpx.AsyncClient(timeout=TIMEOUT, transport=transport,
                                 base_url="http://loopback") as http:
        (await http.post(url, json=payload, headers=headers)).raise_for_status()


async def watch_webhook(s: Served, run_id: str, url: str) -> None:
    """Take on calling the webhook once the run ends (in the background)."""
    duty = Duty(WEBHOOK, run_id, {"url": url})
    await s.duties.add(duty)
    s.spawn(done_after(s.duties, duty, lambda d: deliver(s, d)))


async def deliver(s: Served, duty: Duty) -> None:
    """Wait for the run's end and call its webhook (raising if the receiver refuses)."""
    from arqgraph.server.start import handle_of, result_of, run_json

    info = await s.records.get_run(duty.run_id)
    if info is None:  # (deleted meanwhile: nothing to tell)
        return
    values = await result_of(s, info, await handle_of(s, info))
    status = await s.client.store.status(info.run_id) or "unknown"
    payload = {**run_json(info, status), "run_started_at": info.created_at,
               "run_ended_at": now_iso(), "webhook_sent_at": now_iso(), "values": values}
    if isinstance(values, dict) and "__error__" in values:
        payload.update(values=None, error=values["__error__"])
    payload["status"] = RUN_STATUSES.get(status, status)
    await post(s.app, duty.doc["url"], payload, s.config.webhook_headers)
