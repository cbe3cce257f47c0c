"""What every route reads: the graphs served, the cluster client, the server's records and the
cluster store; and the lookups several routes share (a graph by assistant id, a thread with its
status)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from arqgraph import protocol
from arqgraph.client import Client
from arqgraph.server.config import ServeConfig, ServedGraph
from arqgraph.server.duties import Duties
from arqgraph.server.gate import Gate
from arqgraph.server.records import Records, ThreadRecord
from arqgraph.server.shapes import jsonable, now_iso, pending_interrupts
from arqgraph.storage.long_term import RedisStore
from arqgraph.types import StateSnapshot


@dataclass
class Served:
    config: ServeConfig
    client: Client
    records: Records
    store: RedisStore
    duties: Duties
    retention: int = 7 * 24 * 3600  # seconds a finished run stays readable (the cluster's)
    background: set[asyncio.Task[Any]] = field(default_factory=set)  # (see `spawn`)
    gate: Gate = field(default_factory=Gate)  # (submits let through together, under load)
    app: Any = None  # the ASGI app served, custom routes and all (a webhook's path is called on)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` beside the requests (a duty, a cron's fire, a cancel): kept
        from the garbage collector until done, cancelled when the server stops."""
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


def served(request: Request) -> Served:
    return request.app.state.served  # type: ignore[no-any-return]


async def body_of(request: Request) -> dict[str, Any]:
    """The request's JSON object; 422 naming what is wrong otherwise."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise HTTPException(422, f"the request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise HTTPException(422, "the request body must be a JSON object")
    return data


def checkpoint_in(body: dict[str, Any]) -> dict[str, Any]:
    checkpoint = body.get("checkpoint") or {}
    if not isinstance(checkpoint, dict):
        raise HTTPException(422, "checkpoint must be an object (checkpoint_id, checkpoint_ns)")
    return checkpoint


def graph_for(s: Served, assistant_id: Any, status: int = 404) -> ServedGraph:
    """A served graph by graph id or default assistant id."""
    found = s.config.find(str(assistant_id)) if assistant_id is not None else None
    if found is None:
        raise HTTPException(status, f"Assistant {assistant_id} not found; this server serves "
                            f"the graphs {sorted(s.config.graphs)}")
    return found


EPOCH = "2025-01-01T00:00:00+00:00"  # a default assistant exists as long as its graph


def default_assistant(g: ServedGraph) -> dict[str, Any]:
    """A graph's default assistant, as LangGraph's `Assistant` (made by the "system")."""
    return {"assistant_id": g.assistant_id, "graph_id": g.graph_id, "name": g.graph_id,
            "description": None, "config": {}, "context": {},
            "metadata": {"created_by": "system"}, "version": 1,
            "created_at": EPOCH, "updated_at": EPOCH}


async def find_assistant(s: Served, assistant_id: Any,
                         status: int = 404) -> tuple[ServedGraph, dict[str, Any]]:
    """The graph and assistant an id names: a graph id, a default assistant's UUID, or an
    assistant made through the server (`assistants.create`)."""
    found = s.config.find(str(assistant_id)) if assistant_id is not None else None
    if found is not None:
        return found, default_assistant(found)
    doc = await s.records.get_assistant(str(assistant_id)) if assistant_id else None
    if doc is None:
        raise HTTPException(status, f"Assistant {assistant_id} not found; this server serves "
                            f"the graphs {sorted(s.config.graphs)}")
    return graph_for(s, doc["graph_id"], status), doc


def check_thread_id(thread_id: str) -> str:
    """LangGraph's thread ids are UUIDs; another string is refused with 400, as there."""
    try:
        return str(uuid.UUID(thread_id))
    except ValueError as exc:
        raise HTTPException(400, f"Invalid thread ID {thread_id!r}: must be a UUID") from exc


def thread_config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


async def cluster_has_thread(s: Served, thread_id: str) -> bool:
    return bool(await s.client.redis.exists(protocol.thread_key(protocol.thread_tag(thread_id))))


async def busy_run(s: Served, thread_id: str) -> str | None:
    """The id of the run the thread is busy with, if any."""
    redis: Any = s.client.redis
    busy = await redis.hget(protocol.thread_key(protocol.thread_tag(thread_id)), "run")
    return busy.decode() if busy else None


async def thread_record(s: Served, thread_id: str) -> ThreadRecord | None:
    """The server's record of the thread; one made up for a thread the cluster has but no
    server created (a producer's `Client` run)."""
    record = await s.records.get_thread(thread_id)
    if record is None and await cluster_has_thread(s, thread_id):
        stamp = now_iso()
        record = ThreadRecord(thread_id=thread_id, created_at=stamp, updated_at=stamp)
    return record


async def thread_status(s: Served, thread_id: str, snapshot: StateSnapshot) -> str:
    """idle, busy, interrupted or error, as LangGraph reports a thread."""
    if await busy_run(s, thread_id):
        return "busy"
    latest = await s.records.run_ids(thread_id)
    if latest and await s.client.store.status(latest[0]) == "failed":
        return "error"
    return "interrupted" if snapshot.interrupts or snapshot.next else "idle"


async def thread_json(s: Served, record: ThreadRecord) -> dict[str, Any]:
    """A thread as LangGraph's `Thread`: its record, status, values and open interrupts."""
    snapshot = await s.client.get_state(thread_config(record.thread_id))
    shown = {**record.model_dump(mode="json", exclude={"graph_id"}),
             "state_updated_at": snapshot.created_at or record.updated_at,
             "status": await thread_status(s, record.thread_id, snapshot),
             "values": jsonable(snapshot.values), "config": {}}
    interrupts = pending_interrupts(snapshot)
    return {**shown, "interrupts": interrupts} if interrupts else shown
