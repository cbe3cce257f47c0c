"""A run's `webhook`: when the run ends, a server POSTs the run (as `runs.get` shows it) with
its status, times and final `values` (and `error` if it failed), as LangGraph's server does.
A webhook that is a path (`/my-hook`) is a route of the server itself, a custom one of
`http.app` say: called in the process, past the auth hook, as LangGraph's loopback client
does. Which URLs a run may name is the project's policy (`arqgraph.server.webhook_policy`),
checked when the run is made and again before the call.

The call is a duty (`arqgraph.server.duties`): the server that started the run watches for its
end and calls; if that server stops first, another takes the duty over once its lease lapses
and calls. So the receiver is called once, or, if a server is killed between its call and its
record of it, again with the same run."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from arqgraph.server.auth import LOOPBACK
from arqgraph.server.config import ServeConfig
from arqgraph.server.context import Served
from arqgraph.server.duties import Duty, done_after
from arqgraph.server.shapes import RUN_STATUSES, now_iso
from arqgraph.server.webhook_policy import WebhookRefused

TIMEOUT = 30.0  # seconds a webhook's receiver has to answer
WEBHOOK = "webhook"


async def check_webhook(url: Any, config: ServeConfig) -> str | None:
    """The body's webhook if the project's policy takes it; 422 otherwise, with the `detail`
    LangGraph's server gives."""
    if not url:
        return None
    try:
        await config.webhooks.policy.check(str(url))
    except WebhookRefused as exc:
        raise HTTPException(422, str(exc)) from exc
    return str(url)


def loopback(app: ASGIApp) -> ASGIApp:
    """`app` called by the server itself: its requests are marked, so the auth middleware
    lets them through (nothing from outside can set a scope's key)."""
    async def marked(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, LOOPBACK: True}, receive, send)

    return marked


async def post(app: ASGIApp, url: str, payload: dict[str, Any], headers: dict[str, str],
               address: str | None = None) -> None:
    """POST the payload to the webhook: over the network, or to `app` for a path; raises
    if the receiver refuses. Given the `address` the policy checked, the call connects to it,
    naming the URL's host in its `Host` header and to TLS (which checks the certificate
    against that name)."""
    import httpx

    transport = httpx.ASGITransport(loopback(app)) if url.startswith("/") else None
    target, extensions = httpx.URL(url), {}
    if address is not None and not url.startswith("/"):
        headers = {**headers, "Host": target.netloc.decode("ascii")}
        extensions = {"sni_hostname": target.host}
        target = target.copy_with(host=address)
    async with httpx.AsyncClient(timeout=TIMEOUT, transport=transport,
                                 base_url="http://loopback") as http:
        (await http.post(target, json=payload, headers=headers, extensions=extensions)
         ).raise_for_status()


async def watch_webhook(s: Served, run_id: str, url: str) -> None:
    """Take on calling the webhook once the run ends (in the background); none with
    `http.disable_webhooks`, as in LangGraph."""
    if s.config.webhooks.disabled:
        return
    duty = Duty(WEBHOOK, run_id, {"url": url})
    await s.duties.add(duty)
    s.spawn(done_after(s.duties, duty, lambda d: deliver(s, d)))


async def deliver(s: Served, duty: Duty) -> None:
    """Wait for the run's end and call its webhook (raising if the receiver refuses, or if
    the URL no longer passes the policy: the project or where the host leads changed)."""
    from arqgraph.server.start import handle_of, result_of, run_json

    hooks = s.config.webhooks
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
    address = await hooks.policy.check(duty.doc["url"])
    await post(s.app, duty.doc["url"], hooks.payload(payload), dict(hooks.headers), address)
