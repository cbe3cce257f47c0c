"""A run's `webhook`: when the run ends, a server POSTs the run (as `runs.get` shows it) with
its status, times and final `values` (and `error` if it failed), as LangGraph's server does.

The call is a duty (`arqgraph.server.duties`): the server that started the run watches for its
end and calls; if that server stops first, another takes the duty over once its lease lapses
and calls. So the receiver is called once, or, if a server is killed between its call and its
record of it, again with the same run."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from starlette.exceptions import HTTPException

from arqgraph.server.context import Served
from arqgraph.server.duties import Duty, done_after
from arqgraph.server.shapes import RUN_STATUSES, now_iso

TIMEOUT = 30.0  # seconds a webhook's receiver has to answer
WEBHOOK = "webhook"


def check_webhook(url: Any) -> str | None:
    """The body's webhook, an absolute http(s) URL; 422 otherwise."""
    if url is None:
        return None
    parsed = urlparse(str(url))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise HTTPException(422, f"webhook must be an absolute http(s) URL, not {url!r}")
    return str(url)


async def watch_webhook(s: Served, run_id: str, url: str) -> None:
    """Take on calling the webhook once the run ends (in the background)."""
    duty = Duty(WEBHOOK, run_id, {"url": url})
    await s.duties.add(duty)
    s.spawn(done_after(s.duties, duty, lambda d: deliver(s, d)))


async def deliver(s: Served, duty: Duty) -> None:
    """Wait for the run's end and call its webhook (raising if the receiver refuses)."""
    import httpx

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
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        (await http.post(duty.doc["url"], json=payload)).raise_for_status()
