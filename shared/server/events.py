"""The `events` stream mode: LangChain's `astream_events(version="v2")` events of a run, as
LangGraph's server streams them (each as an `events` SSE event; the graph's own chain run's
`on_chain_stream` events are left out there, its chunks being the other modes' events).

A run asking for it is sent with its nodes' callbacks recorded (what `arqgraph.run_report`
asks for a producer's handlers); a server following the run replays them to LangChain's own
events handler, under a chain run for the graph whose id is fixed by the run's id. The events
come in the order of the cluster's per-run event stream, so every server makes the same
sequence of them (what a reconnect with `Last-Event-ID` relies on)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from arqgraph.client import RunHandle
from arqgraph.constants import CONF, CONFIG_KEY_CALLBACKS
from arqgraph.run_report import GraphRun

EVENTS = "events"
REPORTED = ("callbacks", "calls")  # the recorded events the replay reads
RUN_NAMESPACE = uuid.UUID("5c1d6e0e-4f7a-4c8e-9a53-7f0c2b8e6a11")


def root_run_id(run_id: str) -> uuid.UUID:
    """The id of the graph's chain run in a run's events: the same on every server."""
    return uuid.uuid5(RUN_NAMESPACE, run_id)


def recording(config: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The run's config, asking its workers to record their nodes' callbacks under the
    graph's chain run (streamed chunks too: `on_chain_stream` of the nodes)."""
    wanted = {"parent": str(root_run_id(run_id)), "stream": True}
    return {**config, CONF: {**(config.get(CONF) or {}), CONFIG_KEY_CALLBACKS: wanted}}


def _collector() -> Any:
    """LangChain's events handler, keeping the events it makes in a list (in the order made)
    instead of its queue: the replay is driven from here, not by a graph's run."""
    from langchain_core.tracers.event_stream import _AstreamEventsCallbackHandler

    class Collector(_AstreamEventsCallbackHandler):
        def __init__(self) -> None:
            super().__init__()
            self.made: list[dict[str, Any]] = []

        def _send(self, event: Any, event_type: str) -> None:
            if self.root_event_filter.include_event(event, event_type):
                self.made.append(dict(event))

    return Collector()


class EventsReplay:
    """The `events` of one run, made from its recorded callbacks as they are read."""

    def __init__(self, collector: Any, report: GraphRun, root: str) -> None:
        self.collector = collector
        self.report = report
        self.root = root

    @classmethod
    async def start(cls, handle: RunHandle, name: str, input: Any,
                    config: dict[str, Any]) -> EventsReplay:
        collector = _collector()
        root = root_run_id(handle.run_id)
        _, report = await GraphRun.start(
            {"callbacks": [collector], "run_id": root, "tags": config.get("tags"),
             "metadata": config.get("metadata")}, input, name)
        assert report is not None  # (it has callbacks)
        replay = cls(collector, report, str(root))
        for event in collector.made:  # (as LangChain's: the first event has the run's input)
            event["data"] = {**event.get("data", {}), "input": input}
        return replay

    def taken(self) -> list[dict[str, Any]]:
        """The events made since the last call, without the graph run's own stream chunks."""
        made, self.collector.made = self.collector.made, []
        return [e for e in made if not (e["event"] == "on_chain_stream" and e["run_id"] ==
                                        self.root)]

    async def replay(self, mode: str, payload: Any) -> list[dict[str, Any]]:
        await self.report.replay(mode, payload)
        return self.taken()

    async def end(self, output: Any, end: dict[str, Any]) -> list[dict[str, Any]]:
        await self.report.end(output, end)
        return [self._without_input(e) for e in self.taken()]

    async def error(self, exc: BaseException) -> list[dict[str, Any]]:
        await self.report.error(exc)
        return [self._without_input(e) for e in self.taken()]

    def _without_input(self, event: dict[str, Any]) -> dict[str, Any]:
        """As LangChain's: the graph run's end event leaves out the input its start showed."""
        if event["run_id"] == self.root and event["event"].endswith("_end"):
            event["data"] = {k: v for k, v in event.get("data", {}).items() if k != "input"}
        return event


async def with_events(handle: RunHandle, modes: Sequence[str], subgraphs: bool, name: str,
                      input: Any, config: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
    """(event name, data) of a run asking for `events` beside `modes`: each mode's events as
    `sse.run_events` makes them, and the events of its callbacks as they are read."""
    events = await EventsReplay.start(handle, name, input, config)
    for event in events.taken():
        yield EVENTS, event
    asked = [m for m in modes if m != EVENTS]
    try:
        async for ns, mode, payload in handle.stream([*asked, *REPORTED], subgraphs=True):
            if mode in REPORTED:
                for event in await events.replay(mode, payload):
                    yield EVENTS, event
            elif subgraphs or not ns:
                yield "|".join((mode, *ns)), payload
        end = await handle.end()
        output = handle.output_of(end)
    except Exception as exc:
        for event in await events.error(exc):
            yield EVENTS, event
        raise
    for event in await events.end(output, end):
        yield EVENTS, event
