"""Starting a run: the body's assistant, thread, config and strategy worked out, the run
submitted to the cluster (or, with `after_seconds`, recorded as a duty that a server starts when
due) and recorded; and what the run routes share with it (a recorded run's handle, status and
result, rolling a run back)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from arqgraph import protocol
from arqgraph.client import RunHandle, run_id_for
from arqgraph.constants import COPY_NODE
from arqgraph.errors import RunCancelledError, ThreadBusyError
from arqgraph.server.authz import authorize, check, matches
from arqgraph.server.context import (
    Served,
    busy_run,
    check_thread_id,
    checkpoint_in,
    find_assistant,
    thread_config,
    thread_record,
)
from arqgraph.server.duties import Duty
from arqgraph.server.events import EVENTS, recording
from arqgraph.server.records import RunInfo, ThreadRecord
from arqgraph.server.shapes import RUN_STATUSES, jsonable, now_iso
from arqgraph.server.sse import cluster_modes
from arqgraph.server.webhooks import check_webhook, watch_webhook
from arqgraph.types import Command

STRATEGIES = ("reject", "interrupt", "rollback", "enqueue")
BUSY_RETRIES = 20  # runs that may slip in between ours ending a busy run and submitting


def command_of(raw: Any) -> Command[Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not set(raw) <= {"resume", "goto", "update"}:
        raise HTTPException(422, "command must be an object of resume, goto and update")
    return Command(resume=raw.get("resume"), goto=raw.get("goto") or (),
                   update=raw.get("update"))


def durability_of(body: dict[str, Any]) -> str | None:
    """The run's `durability` ("sync", "async", "exit"), or the deprecated `checkpoint_during`
    as LangGraph's server reads it (False: "exit")."""
    if body.get("durability") is None and body.get("checkpoint_during") is False:
        return "exit"
    return None if body.get("durability") is None else str(body["durability"])


def run_json(info: RunInfo, status: str) -> dict[str, Any]:
    return {"run_id": info.run_id, "thread_id": info.thread_id,
            "assistant_id": info.assistant_id, "created_at": info.created_at,
            "updated_at": info.updated_at, "status": RUN_STATUSES.get(status, status),
            "metadata": info.metadata, "kwargs": info.kwargs,
            "multitask_strategy": info.multitask_strategy}


async def latest_checkpoint(s: Served, thread_id: str) -> str | None:
    saved = await s.client.store.threads.latest_checkpoint(protocol.thread_tag(thread_id))
    return saved.id if saved else None


async def handle_of(s: Served, info: RunInfo) -> RunHandle:
    """The handle of a recorded run, to read its events; 404 once the cluster forgot it."""
    if await s.client.store.status(info.run_id) is None:
        raise HTTPException(404, f"Run {info.run_id} has expired: its events are gone")
    handle = s.client.handle(info.run_id, s.config.graphs[info.graph_id].cluster_name)
    registered = await s.client.store.graph_info(handle.graph)
    if registered is not None:
        handle.entrypoint, handle.root = registered.entrypoint, registered.root
    return handle


async def _thread_for_run(
    s: Served, request: Request | None, thread_id: str | None, body: dict[str, Any]
) -> tuple[ThreadRecord | None, dict[str, Any]]:
    """The run's thread (made if `if_not_exists` says so; None for a stateless run) and the
    run's metadata, once `@auth.on.threads.create_run` allowed it (and added to it)."""
    if thread_id is None and (request is None or s.config.auth is None):
        return None, dict(body.get("metadata") or {})  # (no thread, no handler to ask)
    record, made = None, False
    if thread_id is not None:
        record = await thread_record(s, check_thread_id(thread_id))
        if record is None:
            if body.get("if_not_exists") != "create":
                raise HTTPException(404, f"Thread {thread_id} not found")
            stamp = now_iso()
            record = ThreadRecord(thread_id=check_thread_id(thread_id), created_at=stamp,
                                  updated_at=stamp)
            made = True
    asked: dict[str, Any] = {
        "thread_id": record.thread_id if record else None,
        "assistant_id": body.get("assistant_id"), "run_id": None, "status": "pending",
        "metadata": dict(body.get("metadata") or {}),
        **{k: body.get(k) for k in ("multitask_strategy", "if_not_exists", "after_seconds",
                                    "prevent_insert_if_inflight")},
        "kwargs": {k: body.get(k) for k in ("input", "command", "config", "context")}}
    filters = await authorize(request, "threads", "create_run", asked)
    if record is not None and not made and not matches(record.metadata, filters):
        raise HTTPException(404, f"Thread {thread_id} not found")
    if made and record is not None:
        record.metadata = dict(asked["metadata"])
    return record, asked["metadata"]


async def _end_busy_run(s: Served, thread_id: str, strategy: str) -> None:
    """Make room on a busy thread as `strategy` says: cancel its run (interrupt, rollback:
    also forgotten), or wait for its end (enqueue)."""
    busy = await busy_run(s, thread_id)
    if not busy:
        return
    handle = s.client.handle(busy)
    if strategy in ("interrupt", "rollback"):
        await handle.cancel()
    await handle.end()
    if strategy == "rollback" and (info := await s.records.get_run(handle.run_id)):
        await roll_back(s, info)


async def roll_back(s: Served, info: RunInfo) -> None:
    """Undo an ended run: its thread goes back to the checkpoint it started from (copied as
    the thread's latest, as a fork is; the thread's checkpoints are dropped if it started from
    none) and its record is deleted."""
    if info.before_checkpoint:
        config = {"configurable": {"thread_id": info.thread_id,
                                   "checkpoint_id": info.before_checkpoint}}
        await s.client.bulk_update_state(s.config.graphs[info.graph_id].cluster_name, config,
                                         [[(None, COPY_NODE)]])
    elif not info.stateless:
        await s.client.delete_thread(info.thread_id)
    await s.records.delete_run(info)


@dataclass
class Start:
    """A run worked out from a request's body, ready to submit (now or when due)."""

    graph_id: str
    graph: str  # (the cluster's name for it)
    assistant_id: str
    thread_id: str | None  # None: a stateless run
    key: str  # (the submit's own key: the run's id is known before it is submitted)
    input: Any  # the body's input, or its command (`command` True)
    command: bool
    config: dict[str, Any]
    context: Any
    modes: list[str]
    strategy: str
    webhook: str | None

    @property
    def run_id(self) -> str:
        return run_id_for(self.key, self.thread_id)

    async def submit(self, s: Served) -> tuple[RunHandle, str | None]:
        """Submit the run, making room on its busy thread as its strategy says; the handle
        and the thread's latest checkpoint before it (for a rollback)."""
        run_input = command_of(self.input) if self.command else self.input
        for _ in range(BUSY_RETRIES):
            before = await latest_checkpoint(s, self.thread_id) if self.thread_id else None
            try:
                async with s.gate.through():
                    handle = await s.client.submit(self.graph, run_input, self.config,
                                                   context=self.context, stream_mode=self.modes,
                                                   run_id=self.key)
                return handle, before
            except ThreadBusyError as exc:
                if self.strategy == "reject" or self.thread_id is None:
                    raise HTTPException(409, "Thread is already running a task. Wait for it "
                                        "to finish or choose a different multitask strategy."
                                        ) from exc
                await _end_busy_run(s, self.thread_id, self.strategy)
        raise HTTPException(409, "the thread stayed busy with other runs")


async def start_run(
    s: Served, body: dict[str, Any], thread_id: str | None, request: Request | None = None
) -> tuple[RunInfo, RunHandle | None]:
    """Submit the body's run to the cluster (on `thread_id`, or stateless) and record it;
    `request`'s user must be allowed to (none: a cron's run). With `after_seconds` it is
    recorded as pending and a duty to start it when due (no handle yet)."""
    g, assistant = await find_assistant(s, body.get("assistant_id"), 422)
    if assistant["metadata"].get("created_by") != "system":  # (as LangGraph: a user's only)
        await check(request, "assistants", "read", {"assistant_id": assistant["assistant_id"]},
                    assistant["metadata"], f"Assistant {assistant['assistant_id']}")
    webhook = await check_webhook(body["webhook"], s.config) if body.get("webhook") else None
    delay = delay_of(body)
    if thread_id is None and body.get("on_completion") == "keep":  # a thread that stays
        thread_id, body = str(uuid.uuid4()), {**body, "if_not_exists": "create"}
    strategy = str(body.get("multitask_strategy") or "reject")
    if strategy not in STRATEGIES:
        raise HTTPException(422, f"multitask_strategy must be one of {STRATEGIES}")
    modes = cluster_modes(body.get("stream_mode"))
    asked: dict[str, Any] = dict(body.get("config") or {})
    config = {**assistant["config"], **asked}  # (the assistant's, overridden by the run's)
    configurable = {**(assistant["config"].get("configurable") or {}),
                    **(asked.get("configurable") or {})}
    context = body.get("context")
    if assistant["context"] and isinstance(context or {}, dict):
        context = {**assistant["context"], **(context or {})}
    checkpoint = checkpoint_in(body)
    if body.get("checkpoint_id") or checkpoint.get("checkpoint_id"):
        configurable["checkpoint_id"] = body.get("checkpoint_id") or checkpoint["checkpoint_id"]
    record, metadata = await _thread_for_run(s, request, thread_id, body)
    if record is not None:
        configurable["thread_id"] = record.thread_id
    config["configurable"] = configurable
    config = g.graph._merged(config, durability_of(body), body.get("interrupt_before"),
                             body.get("interrupt_after")) or config
    command = command_of(body.get("command"))
    if command is None:  # a state or context the graph refuses: 422 here, not a failed run
        g.graph._check_call(body.get("input"), context)
    start = Start(g.graph_id, g.cluster_name, assistant["assistant_id"],
                  record.thread_id if record else None, os.urandom(16).hex(),
                  body.get("command") if command is not None else body.get("input"),
                  command is not None, config, context, modes, strategy, webhook)
    run_id = start.run_id  # (two digests: worked out once)
    if EVENTS in modes:
        start.config = recording(config, run_id)
    handle, before = None, None
    if delay:
        await _make_room(s, start)
    else:
        handle, before = await start.submit(s)
    stamp = now_iso()
    if record is not None:
        record.graph_id = g.graph_id
        record.metadata = {**record.metadata, "graph_id": g.graph_id,
                           "assistant_id": assistant["assistant_id"]}
        record.updated_at = stamp
        await s.records.put_thread(record)
    info = RunInfo(
        run_id=run_id, thread_id=record.thread_id if record else str(uuid.uuid4()),
        assistant_id=assistant["assistant_id"], graph_id=g.graph_id, created_at=stamp,
        updated_at=stamp, metadata=metadata, multitask_strategy=strategy,
        stream_mode=modes, stream_subgraphs=bool(body.get("stream_subgraphs")),
        stateless=record is None, before_checkpoint=before,
        starts_at=time.time() + delay if delay else None,
        kwargs={k: body.get(k) for k in ("input", "command", "config", "context",
                                         "interrupt_before", "interrupt_after")})
    await s.records.put_run(info, s.retention)
    if delay:
        await s.duties.add(Duty(DELAYED, info.run_id, start_doc(start, info)),
                           due=info.starts_at)
    elif webhook is not None:
        await watch_webhook(s, info.run_id, webhook)
    return info, handle


DELAYED = "delayed"


def delay_of(body: dict[str, Any]) -> float:
    """The body's `after_seconds` (0 when absent); 422 unless a number of seconds >= 0."""
    raw = body.get("after_seconds") or 0
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise HTTPException(422, f"after_seconds must be a number of seconds >= 0, not {raw!r}")
    return float(raw)


async def _make_room(s: Served, start: Start) -> None:
    """A delayed run's busy thread, as its strategy says when it is created (as LangGraph
    applies it to the runs in flight then): 409 (reject) or the running run cancelled
    (interrupt, rollback); once due it waits for its thread, as a queued run does."""
    if start.thread_id is None or not await busy_run(s, start.thread_id):
        return
    if start.strategy == "reject":
        raise HTTPException(409, "Thread is already running a task. Wait for it to finish or "
                            "choose a different multitask strategy.")
    if start.strategy in ("interrupt", "rollback"):
        await _end_busy_run(s, start.thread_id, start.strategy)


def start_doc(start: Start, info: RunInfo) -> dict[str, Any]:
    return {"start": {k: v for k, v in vars(start).items()}, "info": info.model_dump(mode="json")}


WAIT_FOR_THREAD = 0.2  # seconds between a due run's looks at its busy thread


async def fire(s: Served, duty: Duty) -> None:
    """Start a delayed run that fell due (the duty of whichever server took it): submitted
    with its own key, so a server that took it over after another's crash finds the same run;
    on a busy thread it waits for the running run's end. Then its webhook is watched."""
    start = Start(**duty.doc["start"])
    start.strategy = "enqueue"  # (its strategy was applied when it was made)
    handle, before = await start.submit(s)
    info = RunInfo.model_validate(duty.doc["info"])
    if before is not None:
        info.before_checkpoint = before
    await s.records.put_run(info, s.retention, restarted=True)
    if await s.duties.get(duty.id) is None:  # (cancelled while it was being submitted)
        await handle.cancel()
    if start.webhook is not None:
        await watch_webhook(s, info.run_id, start.webhook)


async def run_status(s: Served, info: RunInfo) -> str:
    """The run's cluster status; "pending" for a delayed run not yet started, the status it
    was given if it never will be (cancelled before it started)."""
    status = await s.client.store.status(info.run_id)
    if status is not None:
        return status
    if info.fixed_status is not None:
        return info.fixed_status
    if info.starts_at is not None and await s.duties.get(f"{DELAYED}:{info.run_id}"):
        return "pending"
    return "unknown"


async def started(s: Served, info: RunInfo) -> RunHandle:
    """The run's handle once it is on the cluster (a delayed run's, once it started); 404 if
    it never will be."""
    while info.starts_at is not None and await s.client.store.status(info.run_id) is None:
        if not await s.duties.get(f"{DELAYED}:{info.run_id}") and (
                await s.client.store.status(info.run_id) is None):
            raise HTTPException(404, f"Run {info.run_id} was cancelled before it started")
        await asyncio.sleep(WAIT_FOR_THREAD)
    return await handle_of(s, info)


async def cancel_pending(s: Served, info: RunInfo) -> bool:
    """Cancel a delayed run not started yet: whether it was one (then it never starts)."""
    if info.starts_at is None or not await s.duties.get(f"{DELAYED}:{info.run_id}"):
        return False
    await s.duties.finish(f"{DELAYED}:{info.run_id}")
    if await s.client.store.status(info.run_id) is not None:
        return False  # (it started meanwhile: cancel it as any other)
    info.fixed_status = "cancelled"
    await s.records.put_run(info, s.retention)
    return True


async def result_of(s: Served, info: RunInfo, handle: RunHandle) -> Any:
    """What `runs.wait` returns: the final values (with `__interrupt__` if interrupted), or
    `__error__` for a failed run."""
    end = await handle.end()
    try:
        return jsonable(handle.output_of(end))
    except RunCancelledError:
        if info.stateless:
            return None
        return jsonable((await s.client.get_state(thread_config(info.thread_id))).values)
    except Exception as exc:
        return {"__error__": {"error": type(exc).__name__, "message": str(exc)}}


