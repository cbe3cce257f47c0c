"""Crons: runs started on a schedule (5-field cron expressions, or 6 with seconds last, in a
time zone), on a thread or each on a new one.

Every server checks the crons twice a second; for a fire that is due, the first server to set
its fire key (`SET NX`) starts the run, so each fire starts one run however many servers are
up, and a fire is still started while any one server is. The thread of a threadless cron's
fire is deleted once its run ends (`on_run_completed="delete"`) as a duty
(`arqgraph.server.duties`): by another server if the one that started the fire stops."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from croniter import croniter
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arqgraph import protocol
from arqgraph.core import codec
from arqgraph.server.authz import authorize, check, matches
from arqgraph.server.context import (
    Served,
    body_of,
    check_thread_id,
    find_assistant,
    graph_for,
    served,
)
from arqgraph.server.duties import Duty, done_after
from arqgraph.server.shapes import now_iso
from arqgraph.server.start import start_run
from arqgraph.server.webhooks import check_webhook

log = logging.getLogger("arqgraph.server.crons")

TICK = 0.5  # seconds between a server's looks at the crons
FIRE_KEPT = 86_400  # seconds a fire's key outlives it
RUN_FIELDS = ("input", "config", "context", "metadata", "interrupt_before", "interrupt_after",
              "stream_mode", "stream_subgraphs", "multitask_strategy", "webhook")


class CronRecord(pydantic.BaseModel):
    cron_id: str
    assistant_id: str
    thread_id: str | None = None  # None: each fire runs on a new thread
    schedule: str
    timezone: str = "UTC"
    created_at: str
    created: float  # epoch seconds: no fire before it
    end_time: str | None = None
    enabled: bool = True
    on_run_completed: str = "delete"  # (a cron without a thread) its runs' threads: or "keep"
    run: dict[str, Any] = {}  # the run's fields, as `runs.create` takes them


def cron_json(cron: CronRecord) -> dict[str, Any]:
    shown = cron.model_dump(mode="json", exclude={"created", "run"})
    return {**shown, "payload": cron.run, "metadata": cron.run.get("metadata") or {},
            "updated_at": cron.created_at, "next_run_date": next_fire(cron).isoformat()}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise HTTPException(422, f"unknown time zone {name!r}") from exc


def next_fire(cron: CronRecord) -> datetime:
    now = datetime.now(_zone(cron.timezone))
    return croniter(cron.schedule, now).get_next(datetime)  # type: ignore[no-any-return]


def last_fire(cron: CronRecord, now: float) -> int:
    """The epoch second of the cron's latest fire at or before `now`."""
    start = datetime.fromtimestamp(now, _zone(cron.timezone))
    return int(croniter(cron.schedule, start).get_prev(datetime).timestamp())


async def _create(request: Request, thread_id: str | None) -> JSONResponse:
    s, body = served(request), await body_of(request)
    await check_webhook(body.get("webhook"), s.config)  # (and again at each fire)
    schedule = str(body.get("schedule") or "")
    if not croniter.is_valid(schedule):
        raise HTTPException(422, f"invalid cron schedule {schedule!r}: five fields "
                            "(minute hour day month weekday), or six with seconds last")
    _, assistant = await find_assistant(s, body.get("assistant_id"), 422)
    run = {"assistant_id": assistant["assistant_id"],
           **{k: body[k] for k in RUN_FIELDS if body.get(k) is not None}}
    cron_id, thread_id = str(uuid.uuid4()), check_thread_id(thread_id) if thread_id else None
    asked: dict[str, Any] = {"payload": run, "schedule": schedule, "cron_id": cron_id,
                             "thread_id": thread_id, "user_id": None,
                             "end_time": body.get("end_time"),
                             "metadata": dict(body.get("metadata") or {})}
    await authorize(request, "crons", "create", asked)  # (it may add to the metadata)
    if asked["metadata"]:
        run["metadata"] = asked["metadata"]
    stamp = now_iso()
    cron = CronRecord(
        cron_id=cron_id, assistant_id=assistant["assistant_id"], thread_id=thread_id,
        schedule=schedule, timezone=str(body.get("timezone") or "UTC"), created_at=stamp,
        created=time.time(), end_time=body.get("end_time"),
        enabled=body.get("enabled", True) is not False, run=run,
        on_run_completed="keep" if body.get("on_run_completed") == "keep" else "delete")
    _zone(cron.timezone)
    redis: Any = s.client.redis
    await redis.hset(protocol.SERVED_CRONS_KEY, cron.cron_id,
                     codec.packb(cron.model_dump(mode="json")))
    return JSONResponse(cron_json(cron))


async def create(request: Request) -> JSONResponse:
    return await _create(request, None)


async def create_for_thread(request: Request) -> JSONResponse:
    return await _create(request, request.path_params["thread_id"])


async def all_crons(s: Served) -> list[CronRecord]:
    raw = await s.client.redis.hgetall(protocol.SERVED_CRONS_KEY)  # type: ignore[misc]
    return sorted((CronRecord.model_validate(codec.unpackb(v)) for v in raw.values()),
                  key=lambda c: c.created)


async def search(request: Request) -> JSONResponse:
    s, body = served(request), await body_of(request)
    wanted_graph = body.get("assistant_id")
    filters = await authorize(request, "crons", "search", {
        k: body.get(k) for k in ("assistant_id", "thread_id", "limit", "offset")})
    found = [cron_json(c) for c in await all_crons(s)
             if matches(c.run.get("metadata") or {}, filters)
             and body.get("thread_id") in (None, c.thread_id)
             and (wanted_graph is None or graph_for(s, wanted_graph, 422).assistant_id
                  == c.assistant_id)]
    offset, limit = int(body.get("offset") or 0), int(body.get("limit") or 10)
    return JSONResponse(found[offset:offset + limit])


async def delete(request: Request) -> Response:
    cron_id, redis = request.path_params["cron_id"], served(request).client.redis
    raw = await redis.hget(protocol.SERVED_CRONS_KEY, cron_id)  # type: ignore[misc]
    if raw is None:
        raise HTTPException(404, f"Cron {cron_id} not found")
    metadata = CronRecord.model_validate(codec.unpackb(raw)).run.get("metadata") or {}
    await check(request, "crons", "delete", {"cron_id": cron_id}, metadata, f"Cron {cron_id}")
    await redis.hdel(protocol.SERVED_CRONS_KEY, cron_id)  # type: ignore[misc]
    return Response(status_code=204)


async def fire_due(s: Served, now: float) -> None:
    """Start the run of each cron whose latest fire is due and not yet started by a server."""
    for cron in await all_crons(s):
        if not cron.enabled:
            continue
        fire = last_fire(cron, now)
        if fire < cron.created or (cron.end_time and
                                   fire > datetime.fromisoformat(cron.end_time).timestamp()):
            continue
        if not await s.client.redis.set(protocol.served_cron_fire_key(cron.cron_id, fire), "1",
                                        nx=True, ex=FIRE_KEPT):
            continue  # another server started it
        body = {**cron.run, "metadata": {**(cron.run.get("metadata") or {}),
                                         "cron_id": cron.cron_id, "cron_fire": fire}}
        thread_id = cron.thread_id or str(uuid.uuid4())
        if cron.thread_id is None:
            body["if_not_exists"] = "create"
        # (in a task of its own: an enqueued run waits for its thread, the others go on)
        s.spawn(_start(s, cron.cron_id, fire, body, thread_id,
                       cron.thread_id is None and cron.on_run_completed == "delete"))


DROP = "drop"


async def drop(s: Served, duty: Duty) -> None:
    """Delete a threadless cron fire's thread once its run ended."""
    await s.client.handle(duty.run_id).end()
    await s.client.delete_thread(duty.doc["thread_id"])
    await s.records.delete_thread(duty.doc["thread_id"])


async def _start(s: Served, cron_id: str, fire: int, body: dict[str, Any],
                 thread_id: str, drop_thread: bool = False) -> None:
    """Start a fire's run; with `drop_thread`, delete its thread once it ends (a cron
    without a thread, `on_run_completed="delete"`)."""
    try:
        _, handle = await start_run(s, body, thread_id)
        if drop_thread and handle is not None:  # (a duty: done even if this server stops)
            duty = Duty(DROP, handle.run_id, {"thread_id": thread_id})
            await s.duties.add(duty)
            s.spawn(done_after(s.duties, duty, lambda d: drop(s, d)))
    except HTTPException as exc:  # its thread busy, say: this fire is skipped
        log.warning("cron %s: fire at %s not started: %s", cron_id, fire, exc.detail)
    except Exception:
        log.exception("cron %s: fire at %s failed to start", cron_id, fire)


async def cron_loop(s: Served) -> None:
    """Fire the crons while the server runs; a failed look is logged and tried again."""
    while True:
        try:
            await fire_due(s, time.time())
        except Exception:
            log.exception("checking the crons failed; trying again")
        await asyncio.sleep(TICK)


routes = [
    Route("/runs/crons", create, methods=["POST"]),
    Route("/runs/crons/search", search, methods=["POST"]),
    Route("/runs/crons/{cron_id}", delete, methods=["DELETE"]),
    Route("/threads/{thread_id}/runs/crons", create_for_thread, methods=["POST"]),
]
