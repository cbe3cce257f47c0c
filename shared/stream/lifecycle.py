"""Subgraphs, as a run's "tasks" events reveal them.

A subgraph shows itself by its first task event under a namespace one level below a task
(`node:<task id>`); it ends when that parent task's result comes (completed, failed or
interrupted), or when the run ends. Two surfaces use this: `run.lifecycle`, a flat stream of
started/ended payloads at every depth, which also goes into the event log; and
`run.subgraphs`, one handle per direct child with projections of its own.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

from arqgraph.errors import GraphDrained, GraphInterrupt
from arqgraph.stream._types import ProtocolEvent, StreamTransformer
from arqgraph.stream.run_stream import AsyncSubgraphRunStream, SubgraphRunStream
from arqgraph.stream.stream_channel import StreamChannel

log = logging.getLogger(__name__)

SubgraphStatus = Literal["started", "completed", "failed", "interrupted", "drained"]
Namespace = tuple[str, ...]


class LifecyclePayload(TypedDict, total=False):
    """An item of `run.lifecycle` (and a "lifecycle" event): a subgraph started or ended."""

    event: SubgraphStatus
    namespace: list[str]
    graph_name: NotRequired[str]
    trigger_call_id: NotRequired[str]
    cause: NotRequired[dict[str, Any]]
    error: NotRequired[str]


class TasksLifecycle(StreamTransformer):
    """Finds subgraphs in the "tasks" events, which it keeps out of the main log.

    Subclasses say which namespaces they follow (`_should_track`) and what to do when one
    starts (`_on_started`) and ends (`_on_terminal`, once per namespace). A subgraph that a
    tool call started (an agent's subagent, named by `lc_agent_name`) carries that call as
    its `cause`.
    """

    required_stream_modes = ("tasks",)

    def __init__(self, scope: Namespace = ()) -> None:
        super().__init__(scope)
        self._seen: set[Namespace] = set()
        self._open: dict[Namespace, str] = {}  # a started subgraph: its parent task's id
        self._agent_of: dict[Namespace, str | None] = {}
        self._tool_call_of: dict[str, str] = {}  # task id: the tool call it runs
        self._pending_cause: dict[str, Any] | None = None

    def _should_track(self, ns: Namespace) -> bool:
        raise NotImplementedError

    def _on_started(self, ns: Namespace, graph_name: str | None,
                    trigger_call_id: str | None) -> None:
        raise NotImplementedError

    def _on_terminal(self, ns: Namespace, status: SubgraphStatus, error: str | None) -> None:
        raise NotImplementedError

    def process(self, event: ProtocolEvent) -> bool:
        if event["method"] == "tasks":
            for child, status, error in self._observe_task(event):
                self._on_terminal(child, status, error)
            return False
        return True

    def _observe_task(self, event: ProtocolEvent) -> list[tuple[Namespace, SubgraphStatus,
                                                                str | None]]:
        """Note a task's start; the subgraphs a task's result ends."""
        ns = tuple(event["params"]["namespace"])
        data = event["params"]["data"]
        if "result" in data:
            return self._ended_by(ns, data)
        metadata = data.get("metadata") or {}
        self._agent_of.setdefault(ns, metadata.get("lc_agent_name"))
        self._note_tool_call(data)
        if self._should_track(ns) and ns not in self._seen:
            self._seen.add(ns)
            self._start(ns, metadata.get("lc_agent_name"))
        return []

    def _note_tool_call(self, data: dict[str, Any]) -> None:
        """Remember the tool call a task runs: a tool call sent as its own task, or the first
        of a list of calls."""
        task_id, arg = data.get("id"), data.get("input")
        if not isinstance(task_id, str):
            return
        call: Any = None
        if isinstance(arg, dict) and isinstance(arg.get("tool_call"), dict):
            call = arg["tool_call"].get("id")
        elif isinstance(arg, list):
            call = next((c["id"] for c in arg if isinstance(c, dict)
                         and isinstance(c.get("id"), str)), None)
        if isinstance(call, str):
            self._tool_call_of[task_id] = call

    def _start(self, ns: Namespace, agent: str | None) -> None:
        name, sep, task_id = ns[-1].partition(":")
        trigger = task_id if sep else None
        self._pending_cause = None
        if agent is not None and trigger is not None and (
                call := self._tool_call_of.get(trigger)):
            self._pending_cause = {"type": "toolCall", "tool_call_id": call}
        self._on_started(ns, agent if agent is not None else (name or None), trigger)
        if trigger is not None:
            self._open[ns] = trigger

    def _ended_by(self, ns: Namespace, data: dict[str, Any]) -> list[tuple[
            Namespace, SubgraphStatus, str | None]]:
        task_id = data.get("id")
        ended = [child for child, parent in self._open.items()
                 if task_id and parent == task_id and child[:-1] == ns]
        status: SubgraphStatus = ("interrupted" if data.get("interrupts") else
                                  "failed" if data.get("error") else "completed")
        error = str(data["error"]) if status == "failed" else None
        for child in ended:
            del self._open[child]
        return [(child, status, error) for child in ended]

    def finalize(self) -> None:
        """The run ended: the subgraphs still open completed with it."""
        for ns in list(self._open):
            self._on_terminal(ns, "completed", None)
        self._open.clear()

    def fail(self, err: BaseException) -> None:
        status, error = status_of(err)
        for ns in list(self._open):
            self._on_terminal(ns, status, error)
        self._open.clear()


def status_of(err: BaseException) -> tuple[SubgraphStatus, str | None]:
    """How a subgraph ended when its run ended with `err`."""
    if isinstance(err, GraphDrained):
        return "drained", None
    if isinstance(err, GraphInterrupt):
        return "interrupted", None
    return "failed", str(err)


class LifecycleTransformer(TasksLifecycle):
    """`run.lifecycle`: every subgraph below the run's scope starting and ending."""

    _native = True

    def __init__(self, scope: Namespace = ()) -> None:
        super().__init__(scope)
        self._channel: StreamChannel[LifecyclePayload] = StreamChannel("lifecycle")

    def init(self) -> dict[str, Any]:
        return {"lifecycle": self._channel}

    def _should_track(self, ns: Namespace) -> bool:
        return len(ns) > len(self.scope) and ns[:len(self.scope)] == self.scope

    def _on_started(self, ns: Namespace, graph_name: str | None,
                    trigger_call_id: str | None) -> None:
        if trigger_call_id is None:
            return
        payload: LifecyclePayload = {"event": "started", "namespace": list(ns)}
        if graph_name:
            payload["graph_name"] = graph_name
        payload["trigger_call_id"] = trigger_call_id
        if self._pending_cause is not None:
            payload["cause"] = self._pending_cause
        self._channel.push(payload)

    def _on_terminal(self, ns: Namespace, status: SubgraphStatus, error: str | None) -> None:
        payload: LifecyclePayload = {"event": status, "namespace": list(ns)}
        if error is not None:
            payload["error"] = error
        self._channel.push(payload)


Handle = SubgraphRunStream | AsyncSubgraphRunStream


class SubgraphTransformer(TasksLifecycle):
    """`run.subgraphs`: a handle per direct child subgraph, fed that subgraph's events.

    Grandchildren show on their parent's handle, whose own mux finds them.
    """

    _native = True
    supports_sync = True

    def __init__(self, scope: Namespace = ()) -> None:
        super().__init__(scope)
        self._log: StreamChannel[Handle] = StreamChannel()
        self._handles: dict[Namespace, Handle] = {}
        self._mux: Any = None

    def init(self) -> dict[str, Any]:
        return {"subgraphs": self._log}

    def _on_register(self, mux: Any) -> None:
        self._mux = mux

    def _should_track(self, ns: Namespace) -> bool:
        return len(ns) == len(self.scope) + 1 and ns[:len(self.scope)] == self.scope

    def _on_started(self, ns: Namespace, graph_name: str | None,
                    trigger_call_id: str | None) -> None:
        if self._mux is None or self._mux._factories is None:
            return
        child = self._mux._make_child(ns)
        cls = AsyncSubgraphRunStream if child.is_async else SubgraphRunStream
        handle = cls(child, path=ns, graph_name=graph_name, trigger_call_id=trigger_call_id)
        self._handles[ns] = handle
        self._log.push(handle)

    def _ending(self, ns: Namespace, status: SubgraphStatus, error: str | None) -> Any:
        """The handle of `ns` marked ended, if this is the first time and its mux is open."""
        handle = self._handles.get(ns)
        if handle is None or handle._seen_terminal:
            return None
        handle.status, handle._seen_terminal = status, True
        if error is not None and handle.error is None:
            handle.error = error
        return None if handle._mux._events._closed else handle

    def _on_terminal(self, ns: Namespace, status: SubgraphStatus, error: str | None) -> None:
        if (handle := self._ending(ns, status, error)) is not None:
            if status == "failed":
                handle._mux.fail(RuntimeError(error or "Subgraph failed"))
            else:
                handle._mux.close()

    async def _aon_terminal(self, ns: Namespace, status: SubgraphStatus,
                            error: str | None) -> None:
        if (handle := self._ending(ns, status, error)) is not None:
            if status == "failed":
                await handle._mux.afail(RuntimeError(error or "Subgraph failed"))
            else:
                await handle._mux.aclose()

    def _handle_of(self, event: ProtocolEvent) -> Any:
        ns = tuple(event["params"]["namespace"])
        if len(ns) <= len(self.scope):
            return None
        handle = self._handles.get(ns[:len(self.scope) + 1])
        return None if handle is None or handle._mux._events._closed else handle

    def process(self, event: ProtocolEvent) -> bool:
        keep = super().process(event)
        if (handle := self._handle_of(event)) is not None:
            handle._observe_event(event)
            handle._mux.push(event)
        return keep

    async def aprocess(self, event: ProtocolEvent) -> bool:
        keep = event["method"] != "tasks"
        if not keep:
            for child, status, error in self._observe_task(event):
                await self._aon_terminal(child, status, error)
        if (handle := self._handle_of(event)) is not None:
            handle._observe_event(event)
            await handle._mux.apush(event)
        return keep

    def finalize(self) -> None:
        first: BaseException | None = None
        for ns in [*self._open, *self._handles]:
            try:
                self._on_terminal(ns, "completed", None)
            except BaseException as exc:
                first = first or exc
        self._open.clear()
        if first is not None:
            raise first

    async def afinalize(self) -> None:
        first: BaseException | None = None
        for ns in [*self._open, *self._handles]:
            try:
                await self._aon_terminal(ns, "completed", None)
            except BaseException as exc:
                first = first or exc
        self._open.clear()
        if first is not None:
            raise first

    def _failing(self, err: BaseException) -> list[Any]:
        """Mark every handle ended by `err`; those whose streams are still open."""
        status, error = status_of(err)
        self._open.clear()
        for ns in self._handles:
            self._ending(ns, status, error)
        return [h for h in self._handles.values() if not h._mux._events._closed]

    def fail(self, err: BaseException) -> None:
        for handle in self._failing(err):
            try:
                handle._mux.fail(err)
            except Exception:
                log.warning("could not fail the stream of subgraph %s", handle.path, exc_info=True)

    async def afail(self, err: BaseException) -> None:
        for handle in self._failing(err):
            try:
                await handle._mux.afail(err)
            except Exception:
                log.warning("could not fail the stream of subgraph %s", handle.path, exc_info=True)
