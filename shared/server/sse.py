"""A run's events as LangGraph's server streams them: a `metadata` event first, then the asked
modes (`mode|node:task` for a subgraph's), an `error` event if the run failed.

Each event's SSE id is its position in that sequence, which the cluster's per-run event stream
fixes: any server replays the same sequence, so a client reconnecting with `Last-Event-ID`
(to this server or another) gets the events after it, none lost and none twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.exceptions import HTTPException

from arqgraph.client import RunHandle
from arqgraph.errors import GraphDrained, RunCancelledError
from arqgraph.server.events import EVENTS, with_events
from arqgraph.server.records import RunInfo
from arqgraph.server.shapes import dumps

MODE_ALIASES = {"messages-tuple": "messages"}
"""The API's mode names that the cluster records under another name."""


STREAM_MODES = ("values", "updates", "custom", "messages", "messages-tuple", "debug", "tasks",
                "checkpoints", EVENTS)


def cluster_modes(stream_mode: Any) -> list[str]:
    """The request's `stream_mode` (a name or a list; "values" when absent) as cluster modes;
    422 naming a mode the server does not stream."""
    modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode or ["values"])
    unknown = [m for m in modes if m not in STREAM_MODES]
    if unknown:
        raise HTTPException(422, f"stream_mode {unknown} not served; choose from {STREAM_MODES}")
    return list(dict.fromkeys(MODE_ALIASES.get(str(m), str(m)) for m in modes))


async def run_events(
    handle: RunHandle, info: RunInfo, attempt: int = 1
) -> AsyncIterator[tuple[str, Any]]:
    """(event name, data) of the run, in the modes `info` records, from its first; ends
    after its last."""
    yield "metadata", {"run_id": handle.run_id, "attempt": attempt}
    modes, subgraphs = info.stream_mode, info.stream_subgraphs
    try:
        if EVENTS in modes:
            async for event in with_events(handle, modes, subgraphs, handle.graph,
                                           info.kwargs.get("input"),
                                           info.kwargs.get("config") or {}):
                yield event
            return
        async for item in handle.stream(list(modes), subgraphs=subgraphs):
            ns, mode, payload = item if subgraphs else ((), *item)
            yield "|".join((mode, *ns)), payload
    except (RunCancelledError, GraphDrained):
        return
    except Exception as exc:  # the run's error, as LangGraph's server sends it
        yield "error", {"error": type(exc).__name__, "message": str(exc)}


async def sse_events(
    handle: RunHandle, info: RunInfo, last_event_id: str | None
) -> AsyncIterator[dict[str, Any]]:
    """The run's events as sse-starlette's dicts, after `last_event_id` if given."""
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else -1
    position = -1
    async for event, data in run_events(handle, info):
        position += 1
        if position > after:
            yield {"event": event, "data": dumps(data), "id": str(position)}
