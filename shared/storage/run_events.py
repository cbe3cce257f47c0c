"""Reading a run's events as a stream: its own, and with `subgraphs` its child runs' too, each
read in full where its parent task announces it, shaped as LangGraph streams them.

The producer's `RunHandle.stream` and a worker whose node streams a subgraph read through
here, so both see the same events in the same shapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from arqgraph import protocol
from arqgraph.errors import GraphDrained, RunCancelledError
from arqgraph.protocol import decode_error
from arqgraph.storage.events import Cursor
from arqgraph.storage.runs import RunStore


async def read(
    store: RunStore, run_id: str, ns: tuple[str, ...], subgraphs: bool, seen: set[str],
    private: frozenset[str] = frozenset(),
) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
    """A run's (namespace, mode, payload) events, with `subgraphs` each child run's too from
    where it starts, all in the order they were written, as LangGraph interleaves a
    subgraph's events with those of the nodes running beside it; a child's end is not passed
    on (its parent task's outcome tells it), nor the run's own when it is a child itself (`ns`).
    Events in a child's `private` modes are left out: those of a child a node streams for
    itself (its custom writes go to that node only, as in LangGraph)."""
    cursor = Cursor()
    cursor.follow(run_id)
    where = {run_id: (ns, private)}
    while True:
        for run, entry_id, event in await store.events.next_events(cursor):
            cursor.took(run, entry_id)
            if event is None:
                continue
            event_mode, payload = event
            run_ns, hidden = where[run]
            if event_mode == "child":
                child = payload.get("run_id") if isinstance(payload, dict) else None
                if subgraphs and isinstance(child, str) and child not in seen:
                    seen.add(child)  # (a redelivered task tells of its child again)
                    cursor.follow(child, cursor.depth[run] + 1)
                    child_ns = str(payload.get("ns", ""))  # ("": a root graph on its own thread)
                    where[child] = (tuple(child_ns.split("|")) if child_ns else (),
                                    frozenset(payload.get("private", ())))
                    break  # read again: the child's first events may precede what follows
                continue
            if event_mode == "end":
                if run != run_id:
                    cursor.drop(run)
                    continue
                if not ns:
                    yield ns, event_mode, payload
                return
            if event_mode not in hidden:
                yield run_ns, event_mode, payload


async def stream(
    store: RunStore, run_id: str, mode: str | Sequence[str], subgraphs: bool,
    key: str | None = None, ended: dict[str, Any] | None = None,
) -> AsyncIterator[Any]:
    """The run's events of `mode` (one mode: payloads; several: (mode, payload) tuples;
    with `subgraphs`, each with its namespace first), until its end, which goes into `ended`
    when given; raises if the run failed. `key`: the state key that holds what the run's
    events show (an entrypoint's output, a one-value state's root)."""
    modes = {mode} if isinstance(mode, str) else set(mode)
    async for ns, event_mode, payload in read(store, run_id, (), subgraphs, set()):
        if event_mode == "end":
            if ended is not None:
                ended.update(payload)
            raise_unless_done(payload)
            return
        if event_mode == "tasks":
            payload = with_error(payload)
        if event_mode in ("tasks", "checkpoints") and "debug" in modes:
            yield from_debug(ns, payload, event_mode, mode, subgraphs)
        if event_mode in ("tasks", "checkpoints"):
            payload = payload["payload"]  # (the step and time are debug's)
        if event_mode in modes:
            shown = _shown(event_mode, payload, key) if not ns else payload
            event = shown if isinstance(mode, str) else (event_mode, shown)
            yield ((ns, shown) if isinstance(mode, str) else (ns, event_mode, shown)
                   ) if subgraphs else event


def _shown(mode: str, payload: Any, key: str | None) -> Any:
    """Events as LangGraph shows them: an entrypoint's return value, not its state; a
    one-value state's value, not its `__root__` key."""
    if key is None or not isinstance(payload, dict):
        return payload
    if mode == "values":
        return payload if "__interrupt__" in payload else payload.get(key)
    if mode == "updates":  # (a node that returned several Commands shows a list)
        return {k: [_unwrap(x, key) for x in v] if isinstance(v, list) else _unwrap(v, key)
                for k, v in payload.items()}
    return payload


def from_debug(ns: tuple[str, ...], event: dict[str, Any], event_mode: str,
               mode: str | Sequence[str], subgraphs: bool) -> Any:
    """A "tasks" or "checkpoints" event as the "debug" mode shows it, in the stream's shape."""
    payload = event["payload"]
    kind = ("checkpoint" if event_mode == "checkpoints" else
            "task" if "input" in payload else "task_result")
    shown = {"step": event["step"], "timestamp": event["timestamp"], "type": kind,
             "payload": payload}
    if isinstance(mode, str):
        return (ns, shown) if subgraphs else shown
    return (ns, "debug", shown) if subgraphs else ("debug", shown)


def with_error(event: dict[str, Any]) -> dict[str, Any]:
    """A task result's error as the exception it was (LangGraph streams the exception)."""
    error = event["payload"].get("error")
    if not isinstance(error, dict):
        return event
    return {**event, "payload": {**event["payload"],
                                 "error": protocol.rebuild_error(decode_error(error))}}


def _unwrap(update: Any, key: str) -> Any:
    return update[key] if isinstance(update, dict) and key in update else update


def raise_unless_done(end: dict[str, Any]) -> None:
    """Raise what a run's end event tells, unless the run ended well (or was interrupted)."""
    if end.get("drained"):
        raise GraphDrained(end["drained"])
    if end["status"] == "failed":
        raise protocol.rebuild_error(decode_error(end["error"]))
    if end["status"] == "cancelled":
        raise RunCancelledError("the run was cancelled")
