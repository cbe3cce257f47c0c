"""A run's `webhook`: when the run ends, the server that started it POSTs the run (as
`runs.get` shows it) with its status, times and final `values` (and `error` if it failed), as
LangGraph's server does. The call is made once, by that server: if it stops before the run
ends, the call is not made (a webhook is a notice, not a queue)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

from starlette.exceptions import HTTPException

from arqgraph.client import RunHandle
from arqgraph.server.context import Served
from arqgraph.server.records import RunInfo
from arqgraph.server.shapes import RUN_STATUSES, now_iso

log = logging.getLogger("arqgraph.server")
TIMEOUT = 30.0  # seconds a webhook's receiver has to answer


def check_webhook(url: Any) -> str | None:
    """The body's webhook, an absolute http(s) URL; 422 otherwise."""
    if url is None:
        return None
    parsed = urlparse(str(url))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise HTTPException(422, f"webhook must be an absolute http(s) URL, not {url!r}")
    return str(url)


def call_after(s: Served, info: RunInfo, handle: RunHandle, url: str) -> None:
    """Call the webhook once the run ends (in the background)."""
    s.spawn(_call(s, info, handle, url))


async def _call(s: Served, info: RunInfo, handle: RunHandle, url: str) -> None:
    import httpx

    from arqgraph.server.runs import result_of, run_json

    try:
        values = await result_of(s, info, handle)
        status = await s.client.store.status(info.run_id) or "unknown"
        payload = {**run_json(info, status), "run_started_at": info.created_at,
                   "run_ended_at": now_iso(), "webhook_sent_at": now_iso(), "values": values}
        if isinstance(values, dict) and "__error__" in values:
            payload.update(values=None, error=values["__error__"])
        payload["status"] = RUN_STATUSES.get(status, status)
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            (await http.post(url, json=payload)).raise_for_status()
    except Exception:
        log.exception("run %s: the webhook %s failed", info.run_id, url)
