"""Values as LangGraph's HTTP API shows them: state and events made JSON-able, snapshots as
`ThreadState`s, cluster run statuses as LangGraph's."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from arqgraph.types import Interrupt, StateSnapshot

RUN_STATUSES = {"pending": "pending", "running": "running", "done": "success",
                "failed": "error", "cancelled": "interrupted", "interrupted": "success",
                "unknown": "success"}
"""A cluster run's status as LangGraph reports it: a cancelled run reads "interrupted", a run
that stopped at an interrupt "success" (its thread reads "interrupted")."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def jsonable(value: Any) -> Any:
    """A state value, event or snapshot as JSON values: messages and pydantic models by their
    fields, dataclasses (interrupts, commands) by theirs, tuples as lists."""
    if isinstance(value, Interrupt):
        return {"value": jsonable(value.value), "id": value.id}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": str(value)}
    return repr(value)


def dumps(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False)


def checkpoint_of(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    c = config.get("configurable") or {}
    return {"thread_id": c.get("thread_id"), "checkpoint_ns": c.get("checkpoint_ns", ""),
            "checkpoint_id": c.get("checkpoint_id"), "checkpoint_map": c.get("checkpoint_map")}


def thread_state(snapshot: StateSnapshot) -> dict[str, Any]:
    """A snapshot as LangGraph's `ThreadState`: interrupts under their tasks, checkpoints as
    dicts, a subgraph task's state as a `ThreadState` too."""
    checkpoint = checkpoint_of(snapshot.config)
    parent = checkpoint_of(snapshot.parent_config)
    tasks = []
    for task in snapshot.tasks:
        state = task.state
        tasks.append({
            "id": task.id, "name": task.name, "error": task.error,
            "interrupts": jsonable(list(task.interrupts)),
            "checkpoint": checkpoint_of(state) if isinstance(state, dict) else None,
            "state": thread_state(state) if isinstance(state, StateSnapshot) else None,
            "result": jsonable(task.result),
        })
    return {
        "values": jsonable(snapshot.values), "next": list(snapshot.next), "tasks": tasks,
        "metadata": jsonable(snapshot.metadata or {}), "created_at": snapshot.created_at,
        "checkpoint": checkpoint, "parent_checkpoint": parent,
        "checkpoint_id": (checkpoint or {}).get("checkpoint_id"),
        "parent_checkpoint_id": (parent or {}).get("checkpoint_id"),
        "interrupts": jsonable(list(snapshot.interrupts)),
    }


def pending_interrupts(snapshot: StateSnapshot) -> dict[str, list[Any]]:
    """A thread's `interrupts`: the unanswered ones by the id of the task that asked."""
    return {t.id: jsonable(list(t.interrupts)) for t in snapshot.tasks
            if t.interrupts and any(i in snapshot.interrupts for i in t.interrupts)}
