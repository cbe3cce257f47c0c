"""A run's events as its stream keeps them: a mode and a msgpack payload, the large values of a
payload kept apart in the thread's blobs and put back by readers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from arqgraph.core import codec
from arqgraph.protocol import blobs as large
from arqgraph.protocol.keys import EventMode


def encode_event(mode: EventMode, payload: Any) -> dict[str, bytes]:
    return {"mode": mode.encode(), "data": codec.packb(payload)}


def event_args(events: Sequence[tuple[EventMode, Any]], blobs: dict[str, bytes] | None = None
               ) -> list[Any]:
    """Events as the scripts that add them to a run's stream take them: mode, data, mode, ...
    (the fields of `encode_event`, which the script puts back together). With `blobs`, the
    large values of "values", "updates", "end", "tasks" and "checkpoints" events are kept apart
    there (`split_event`; the state the events show is the checkpoints', so mostly blobs they
    keep already, and a node's update becomes the next checkpoint's): readers put them back
    (`event_with_blobs`). "debug" events are read from "tasks" and "checkpoints" ones."""
    args: list[Any] = []
    for mode, payload in events:
        if blobs is not None:
            payload = split_event(mode, payload, blobs)
        args += [mode, codec.packb(payload)]
    return args


def split_event(mode: str, payload: Any, blobs: dict[str, bytes]) -> Any:
    """The event's payload with its large values kept apart in `blobs` (see `event_args`)."""
    where = f"{mode} event" if mode in ("tasks", "checkpoints") else "state"
    return _mapped(mode, payload, lambda values: large.split(values, blobs, where))


TASK_VALUES = ("input", "result")
"""The keys of a "tasks" event's payload that hold values: a task's input (a state, a Send's
argument, a call's arguments), a task's result (its writes by key)."""


def _mapped(mode: str, payload: Any, change: Any) -> Any:
    """The event's payload with `change` applied to each state of it `event_args` may have
    kept values of apart: a "values" event's, each node's update of an "updates" event, an
    "end" event's output, a "checkpoints" event's values, a "tasks" event's input or result.
    `change` takes and returns a dict of values; a value that is no dict (an entrypoint's, a
    Send's argument) goes through it as the one value of a dict."""
    if not isinstance(payload, dict):
        return payload
    if mode == "values":
        return change(payload)
    if mode == "updates":
        return {k: change(v) if isinstance(v, dict) else v for k, v in payload.items()}
    if mode == "end" and isinstance(payload.get("output"), dict):
        return {**payload, "output": change(payload["output"])}
    inner = payload.get("payload")
    if mode in ("checkpoints", "tasks") and isinstance(inner, dict):
        keys = ("values",) if mode == "checkpoints" else TASK_VALUES
        changed = {k: _as_values(change, inner[k]) for k in keys if inner.get(k) is not None}
        return {**payload, "payload": {**inner, **changed}} if changed else payload
    return payload


def _as_values(change: Any, value: Any) -> Any:
    """`change` of a dict of values, applied to `value`: a dict, or any value as the one
    value of a dict."""
    return change(value) if isinstance(value, dict) else change({"": value})[""]


def event_refs(mode: str, payload: Any) -> set[str]:
    """The ids of the blobs an event refers to (see `event_args`)."""
    found: set[str] = set()

    def note(values: dict[str, Any]) -> dict[str, Any]:
        found.update(large.refs(values))
        return values

    _mapped(mode, payload, note)
    return found


def event_with_blobs(mode: str, payload: Any, blobs: Mapping[str, bytes | None]) -> Any:
    """The event's payload with the values it refers to put back."""
    return _mapped(mode, payload, lambda values: large.resolve(values, blobs))


def decode_event(fields: Mapping[bytes, bytes]) -> tuple[str, Any]:
    return fields[b"mode"].decode(), codec.unpackb(fields[b"data"])
