"""Seeing and steering a pool: the operations behind `arqgraph runs|status|cancel|resume|state|
workers|graphs|health`, as plain JSON-ready dicts, so that the CLI is a thin shell over them and
a dashboard can reuse them as they are."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from arqgraph import protocol
from arqgraph.client import Client, RunHandle
from arqgraph.constants import START
from arqgraph.core.graphs import root_graph
from arqgraph.errors import UnknownGraphError, UnknownRunError
from arqgraph.protocol import Heartbeat, RunRecord
from arqgraph.storage import blobs
from arqgraph.storage.presence import Presence
from arqgraph.types import Command, StateSnapshot

RUNNING = ("pending", "running")
SCAN_BATCH = 1000


def _beat(beat: Heartbeat) -> dict[str, Any]:
    return {**beat.model_dump(), "age": round(max(time.time() - beat.seen, 0.0), 3)}


def snapshot_dict(snapshot: StateSnapshot) -> dict[str, Any]:
    """A StateSnapshot as JSON-ready data (values as they are; the CLI prints others' repr)."""
    return {
        "values": snapshot.values, "next": list(snapshot.next),
        "checkpoint_id": (snapshot.config.get("configurable") or {}).get("checkpoint_id"),
        "metadata": snapshot.metadata, "created_at": snapshot.created_at,
        "tasks": [{"id": t.id, "name": t.name} for t in snapshot.tasks],
        "interrupts": [{"id": i.id, "value": i.value} for i in snapshot.interrupts],
    }


class Admin:
    """The read and steer operations over one Redis (a Client's connection)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.store = client.store
        self.redis = client.redis

    # -- the pool ----------------------------------------------------------------------------

    async def workers(self) -> list[dict[str, Any]]:
        """Live workers: host, pid, queues, graphs, concurrency, running jobs, last beat."""
        return [_beat(b) for b in await Presence(self.redis, "worker").live()]

    async def orchestrators(self) -> list[dict[str, Any]]:
        return [_beat(b) for b in await Presence(self.redis, "orchestrator").live()]

    async def graphs(self) -> list[dict[str, Any]]:
        """Registered graphs: queue, fingerprint, the live orchestrators serving them, the live
        workers on their queue, and whether runs are waiting for workers (none live)."""
        orchestrators = await Presence(self.redis, "orchestrator").live()
        workers = await Presence(self.redis, "worker").live()
        shown = []
        for name in await self.store.graph_names():
            info = await self.store.graph_info(name)
            if info is None:
                continue
            on_queue = [w.id for w in workers if info.queue in w.queues]
            shown.append({
                "name": name, "queue": info.queue, "fingerprint": info.fingerprint,
                "orchestrators": [o.id for o in orchestrators if name in o.graphs],
                "workers": len(on_queue), "waiting_for_workers": not on_queue,
            })
        return shown

    async def health(self) -> list[str]:
        """What keeps the pool from serving (empty when healthy): no live orchestrator, or a
        registered graph whose queue has no live worker. Redis answering is the caller's
        connect."""
        await self.redis.ping()
        problems = []
        if not await Presence(self.redis, "orchestrator").live():
            problems.append("no live orchestrator")
        for graph in await self.graphs():
            if graph["orchestrators"] and graph["waiting_for_workers"]:
                problems.append(f"graph {graph['name']!r}: no live worker on queue "
                                f"{graph['queue']!r}")
        return problems

    # -- runs --------------------------------------------------------------------------------

    async def runs(self, graph: str | None = None, status: str | None = None,
                   limit: int = 20) -> list[dict[str, Any]]:
        """Recent runs, newest first: ids, graph, status, when created and finished, how long
        it took (so far, while it runs), its current step and when it last moved (its latest
        checkpoint's time). It scans the run records (runs expire after their retention), so
        it costs a read per run kept: for people, not for hot paths."""
        found: list[dict[str, Any]] = []
        now = time.time()
        async for key in self.redis.scan_iter(match=protocol.RUN_KEYS_PATTERN, count=SCAN_BATCH):
            raw: list[bytes | None] = await self.redis.hmget(  # type: ignore[misc]
                key, ["graph", "status", "thread_id", "created", "finished"])
            name, state, thread, created, finished = (v.decode() if v else "" for v in raw)
            if graph and name != graph or status and _shown_status(state) != status:
                continue
            began, ended = (float(t) if t else None for t in (created, finished))
            found.append({"run_id": protocol.run_of_key(key.decode()), "thread_id": thread,
                          "graph": name, "status": _shown_status(state),
                          "created": began or 0.0, "finished": ended,
                          "duration": _duration(state, began, ended, now)})
        found.sort(key=lambda r: r["created"], reverse=True)
        for run in found[:limit]:  # (the step is in the run's checkpoint: read the few shown)
            record = await self.store.load_run(run["run_id"])
            saved = record.saved if record is not None else None
            run["step"] = saved.checkpoint.step if saved is not None else None
            run["moved"] = _unix(saved.created_at) if saved is not None else None
        return found[:limit]

    async def _record(self, run_id: str) -> RunRecord:
        try:
            record = await self.store.load_run(run_id)
        except ValueError:  # not a run id at all
            record = None
        if record is None:
            raise UnknownRunError(f"no run {run_id!r} (finished runs expire after their "
                                  "retention)")
        return record

    async def status(self, run_id: str) -> dict[str, Any]:
        """A run's status, superstep and its tasks (node, attempt, done), its error with the
        worker's traceback, its pending interrupts, and whether it waits for workers."""
        record = await self._record(run_id)
        tag = protocol.tag_of(run_id)
        checkpoint = record.checkpoint
        tasks: list[dict[str, Any]] = []
        if checkpoint is not None and record.status not in ("done", "cancelled"):
            ids = [t.id for t in checkpoint.tasks]
            outcomes = await self.store.outcomes(tag, record.checkpoint_id, ids)
            claims_key = protocol.claims_key(tag, record.checkpoint_id)
            attempts = await self.redis.hmget(claims_key, ids) if ids else []  # type: ignore[misc]
            running = {job: (w.id, since) for w in await Presence(self.redis, "worker").live()
                       for job, since in w.jobs.items()}
            for task, attempt in zip(checkpoint.tasks, attempts, strict=True):
                outcome = outcomes.get(task.id)
                state = ("queued" if attempt is None else "running") if outcome is None else (
                    _outcome_state(outcome))
                worker, since = running.get(
                    protocol.job_id(run_id, record.checkpoint_id, task.id), (None, None))
                tasks.append({"id": task.id, "node": task.node, "state": state,
                              "attempt": int(attempt or 0), "worker": worker, "since": since})
        shown: dict[str, Any] = {
            "run_id": run_id, "thread_id": record.thread_id, "graph": record.graph,
            "status": _shown_status(record.status),
            "created": record.created or 0.0, "finished": record.finished,
            "duration": _duration(record.status, record.created, record.finished, time.time()),
            "step": checkpoint.step if checkpoint is not None else None, "tasks": tasks,
            "error": None, "interrupts": [], "waiting_for_workers": False,
        }
        if record.error is not None:
            e = record.error
            shown["error"] = {"type": e.type, "message": e.message, "node": e.node,
                              "traceback": e.traceback}
        if record.status == "interrupted" and record.keep:
            snapshot = await self.client.get_state(_thread(record.thread_id))
            shown["interrupts"] = [{"id": i.id, "value": i.value} for i in snapshot.interrupts]
        if record.status in RUNNING:
            info = await self.store.graph_info(root_graph(record.graph))
            live = {q for w in await Presence(self.redis, "worker").live() for q in w.queues}
            shown["waiting_for_workers"] = info is not None and info.queue not in live
        return shown

    async def cancel(self, run_id: str) -> dict[str, Any]:
        record = await self.store.request_cancel(run_id)
        if record is None:
            raise UnknownRunError(f"no run {run_id!r}")
        return {"run_id": run_id, "status": "cancelling"}

    async def resume(self, thread_id: str, value: Any, graph: str | None = None) -> RunHandle:
        """Answer the thread's pending interrupt, as `Command(resume=value)` would. `graph`
        may be left out when one graph is registered."""
        if graph is None:
            names = await self.store.graph_names()
            if len(names) != 1:
                raise UnknownGraphError("name the thread's graph with --graph (registered: "
                                        f"{', '.join(names) or 'none'})")
            graph = names[0]
        return await self.client.submit(graph, Command(resume=value), _thread(thread_id))

    async def timeline(self, run_id: str) -> list[dict[str, Any]]:
        """The run's supersteps, oldest first: each step's checkpoint, when it began and how
        long it took (until the next checkpoint), and its tasks with their node, state,
        attempts, and the worker that ran (or runs) them, since when and how long it took."""
        record = await self._record(run_id)
        tag = protocol.tag_of(run_id)
        saved = [s for s in reversed(await self.store.threads.history(tag)) if s.run_id == run_id]
        current = {t["id"]: t for t in (await self.status(run_id))["tasks"]}
        steps = []
        for i, s in enumerate(saved):
            outcomes, priors, _ = await self.store.threads.task_records(tag, s.id)
            ran = await self.store.threads.task_runs(tag, s.id)
            began = _unix(s.created_at)
            later = _unix(saved[i + 1].created_at) if i + 1 < len(saved) else None
            tasks = []
            for t in s.checkpoint.tasks:
                shown = current.get(t.id) if s.id == record.checkpoint_id else None
                if shown is None:
                    outcome = outcomes.get(t.id)
                    state = "done" if t.node == START or outcome is None and later else (
                        "queued" if outcome is None else _outcome_state(outcome))
                    shown = {"id": t.id, "node": t.node, "state": state,
                             "attempt": len(priors.get(t.id, [])) + 1, "worker": None,
                             "since": None}
                worker, since, took = ran.get(t.id, (None, None, None))
                tasks.append({**shown, "worker": shown["worker"] or worker,
                              "since": shown["since"] or since, "took": took})
            steps.append({"step": s.checkpoint.step, "checkpoint_id": s.id, "source": s.source,
                          "began": began,
                          "took": None if later is None or began is None else later - began,
                          "tasks": tasks})
        return steps

    async def events(self, run_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The run's latest stream events (values, updates, custom, ..., end), oldest first,
        as they are kept (a stream keeps its last `protocol.EVENTS_KEPT`); an unreadable one
        is shown as such and left for the readers that set it aside."""
        await self._record(run_id)
        entries = await self.redis.xrevrange(protocol.events_key(run_id), count=limit)
        shown = []
        for entry_id, fields in reversed(entries):
            try:
                mode, payload = protocol.decode_event(fields)
                payload = await blobs.resolved_event(self.redis, protocol.tag_of(run_id),
                                                     mode, payload)
            except Exception as exc:  # (shown, not set aside: this is a read)
                mode, payload = "unreadable", repr(exc)
            shown.append({"id": entry_id.decode(), "at": int(entry_id.split(b"-")[0]) / 1000,
                          "mode": mode, "payload": payload})
        return shown

    async def queues(self) -> list[dict[str, Any]]:
        """Each queue a graph or a live worker uses: its jobs (due, deferred or running), the
        age of its oldest, and its workers' concurrency in use."""
        workers = await self.workers()
        names = {w["queue"] for w in await self.graphs()} | {
            q for w in workers for q in w["queues"]}
        now = time.time()
        shown = []
        for name in sorted(names):
            oldest = await self.redis.zrange(name, 0, 0, withscores=True)
            on = [w for w in workers if name in w["queues"]]
            shown.append({
                "queue": name, "depth": int(await self.redis.zcard(name)),
                "oldest_age": round(max(now - oldest[0][1] / 1000, 0.0), 3) if oldest else None,
                "workers": len(on), "concurrency": sum(w["concurrency"] for w in on),
                "running": sum(w["running"] for w in on),
            })
        return shown

    async def drawing(self, graph: str) -> dict[str, Any]:
        """The graph's nodes, edges and Mermaid text as its orchestrators registered them
        (empty for a graph they could not draw, or registered by an older version)."""
        info = await self.store.graph_info(root_graph(graph))
        if info is None:
            raise UnknownGraphError(f"no graph {graph!r} is registered")
        return info.drawing

    async def state(self, thread_id: str, history: bool = False) -> list[dict[str, Any]]:
        """The thread's latest state, or with `history` its checkpoints, newest first."""
        if history:
            return [snapshot_dict(s) for s in await self.client.get_state_history(
                _thread(thread_id))]
        return [snapshot_dict(await self.client.get_state(_thread(thread_id)))]


def _outcome_state(outcome: Any) -> str:
    return "failed" if outcome.error else "interrupted" if outcome.interrupts else "done"


def _duration(status: str, created: float | None, finished: float | None,
              now: float) -> float | None:
    """Seconds from submit to end, or to `now` while the run goes on; None when unknown (a run
    without a submit time, or ended by a version that did not record when)."""
    if not created:
        return None
    end = finished if finished is not None else now if status in RUNNING else None
    return None if end is None else round(max(end - created, 0.0), 3)


def _unix(iso: str) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _thread(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def _shown_status(status: str) -> str:
    """A pending run shows as running (it is being started)."""
    return "running" if status == "pending" else status
