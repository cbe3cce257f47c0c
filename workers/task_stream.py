"""What a running task tells its run's event stream, in the order it happens: its start
("tasks"), its custom writes ("custom"), and its messages ("messages").

The "messages" mode: LLM tokens as a chat model inside a node makes them, and the messages a
node returns, each as `(message, metadata)`.

As LangGraph does, a LangChain callback handler joins the node's config (and LangChain's
config context, so a model called without the config finds it too); being a streaming handler,
it makes chat models stream. Every token goes to the run's event stream while the model is
still generating, in order. Models tagged `nostream` are left out; a message already streamed,
or already in the node's input, is not sent again. Needs `langchain-core` (the `langchain`
extra); without it a run asking for "messages" gets none, as nothing could make them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID, uuid4

import pydantic

from arqgraph.constants import (
    CONFIG_KEY_CALLBACKS,
    CONFIG_KEY_STREAM_MESSAGES_V2,
    PROPAGATED_TO_METADATA,
    START,
)
from arqgraph.core import codec
from arqgraph.core.pregel import Repeated, Task, shown_writes
from arqgraph.protocol import RunRecord, TaskJob
from arqgraph.runtime import RunControl
from arqgraph.storage.moves import task_event
from arqgraph.storage.namespaces import below, task_uuid
from arqgraph.storage.runs import RunStore
from arqgraph.trace_policy import TracePolicy, recorded
from arqgraph.workers.executor import TaskResult
from arqgraph.workers.node_callbacks import NodeRun
from arqgraph.workers.timeouts import progress_written
from arqgraph.workers.tool_events import tools_handler

NOSTREAM = "nostream"
DRAIN = "__drain__"  # (not an event: a drain request, sent in order with the events)
Emit = Callable[[Any], None]


class TaskStream:
    """The events of one task's attempt, sent in order while the node runs (`close` waits for
    the last): what the node writes, what its chat models stream, and, as the run asked,
    its start."""

    def __init__(self, store: RunStore, record: RunRecord, job: TaskJob, task: Task,
                 joins: Sequence[tuple[Sequence[str], str]],
                 trace_policy: TracePolicy | None = None, entrypoint: bool = False,
                 node_run: bool = True) -> None:
        self.record, self.job, self.task = record, job, task
        self._task_id: str | None = None
        self._namespace: str | None = None
        self.trace_policy, self.entrypoint = trace_policy, entrypoint

        async def send(event: tuple[Any, Any]) -> None:
            if event[0] == DRAIN:
                await store.request_drain(job.run_id, event[1])
            else:
                await store.events.emit(job.run_id, *event)

        self.emit = emit = OrderedEmitter(send, asyncio.get_running_loop())
        # `runtime.control`: a drain the node asks for is recorded before its outcome is
        # posted (in order with its events), so the step it runs in is the run's last. (Its
        # callbacks hold the emitter, not this stream: a cycle through the stream would keep
        # the run's record and state alive until the garbage collector came by.)
        self.control = RunControl()
        if record.drain:
            self.control.request_drain(record.drain)
        else:
            self.control.on_drain(lambda reason: emit((DRAIN, reason)))
        self.triggers = ("__pregel_push",) if task.send_index is not None else (
            START,) if entrypoint else (  # (an entrypoint's task starts from the input)
            f"branch:to:{task.node}",
            *(f"join:{'+'.join(sources)}:{target}" for sources, target in joins
              if target == task.node))
        self.handler: Any = None
        wanted = (record.config.get("configurable") or {}).get(CONFIG_KEY_CALLBACKS)
        self.node_run = NodeRun(
            self.emit, wanted, task.node, job.step + 1, self.node_metadata(record.config),
            list(record.config.get("tags") or [])) if isinstance(wanted, dict) and node_run and \
            available() else None
        self.tools = tools_handler(emit) if (
            record.records("tools") and available()) else None
        if record.records("messages") and available():
            v2 = bool((record.config.get("configurable") or {}).get(
                CONFIG_KEY_STREAM_MESSAGES_V2))
            self.handler = messages_handler(lambda m: emit(("messages", m)),
                                            self.node_metadata(record.config), v2=v2)

    def metadata(self) -> dict[str, Any]:
        """LangGraph's metadata of a task: its node, step (LangGraph counts the step that runs
        a checkpoint's tasks as the next one), triggers, path and namespace."""
        task, ns = self.task, self.namespace()
        path = ("__pregel_pull", task.node) if task.send_index is None else (
            "__pregel_push", task.send_index, False)  # (False: not a call, as LangGraph's)
        return {"langgraph_step": self.job.step + 1, "langgraph_node": task.node,
                "langgraph_triggers": self.triggers, "langgraph_path": path,
                "langgraph_checkpoint_ns": ns, "ls_integration": "langgraph"}

    def node_metadata(self, config: dict[str, Any]) -> dict[str, Any]:
        """The metadata of the node's config: some of the run's configurable keys (as
        LangGraph shows them to tracers and on the "messages" mode), the run's, the task's."""
        configurable = config.get("configurable") or {}
        return {**{k: v for k in PROPAGATED_TO_METADATA if (v := configurable.get(k))},
                **config.get("metadata", {}), **self.metadata()}

    def task_id(self) -> str:
        """The task's id as LangGraph shows it (a UUID); worked out once, as each of the
        task's metadata, config and events asks for it."""
        if self._task_id is None:
            self._task_id = task_uuid(self.record, self.job.checkpoint_id, self.task.id)
        return self._task_id

    def namespace(self) -> str:
        """The task's checkpoint namespace: `node:task-id` below its run's own."""
        if self._namespace is None:
            self._namespace = below(self.record, f"{self.task.node}:{self.task_id()}")
        return self._namespace

    def node_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config the node gets: the run's, with the task's metadata (and the handler
        of the "messages" mode among its callbacks)."""
        metadata = self.node_metadata(config)
        # (LangGraph names the integration to tracers and streams only, not in the node's config)
        metadata.pop("ls_integration", None)
        # (the task's own namespace, as LangGraph's node config names it: what a model's
        # metadata shows; subgraphs started here take theirs from the run, not from this)
        configurable = {**(config.get("configurable") or {}), "checkpoint_ns": self.namespace()}
        config = {**config, "metadata": metadata, "configurable": configurable}
        own = [h for h in (self.handler, self.tools) if h is not None]
        if self.node_run is not None:  # (under the node's run; its subgraphs' runs too)
            config["callbacks"] = self.node_run.callbacks(own)
            configurable[CONFIG_KEY_CALLBACKS] = {**configurable[CONFIG_KEY_CALLBACKS],
                                                  "parent": str(self.node_run.run_id)}
        elif own:
            config["callbacks"] = [*(config.get("callbacks") or []), *own]
        return config

    def custom(self, chunk: Any) -> None:
        """The node's stream writer: a "custom" event."""
        codec.packb(chunk)  # fail in the node, naming the type, if it cannot be sent
        progress_written()
        self.emit(("custom", chunk))

    async def started(self, node_input: Any) -> None:
        """The node is about to run on `node_input`."""
        if self.handler is not None:
            self.handler.node_started(node_input)
        policy = self.trace_policy
        # (what tracers record of the input, when its TracePolicy changes it)
        shown = recorded(node_input, policy.process_inputs) if policy is not None else None
        given = node_input.get("input") if self.entrypoint and isinstance(
            node_input, dict) else node_input  # (an entrypoint is given its input only)
        if self.node_run is not None:
            self.node_run.start(given, self.task.id, shown)
        if self.record.records("tasks"):
            event = task_event(self.task, self.job.step, self.task_id(), input=given,
                               triggers=self.triggers)
            self.emit(traced(event, shown))

    def traced_result(self, result: TaskResult) -> TaskResult:
        """`result` with what tracers record of its writes, when the node's TracePolicy
        changes it."""
        policy, outcome = self.trace_policy, result.outcome
        if policy is None or not outcome.succeeded:
            return result
        changed, shown = recorded(shown_writes(outcome.writes), policy.process_outputs)
        return dataclasses.replace(result, traced=(changed, shown))

    async def close(self, writes: Mapping[str, Any] | None = None, *, told: bool = True,
                    error: BaseException | None = None,
                    traced_writes: tuple[bool, Any] | None = None) -> None:
        """The node is done, having written `writes` (or failed with `error`): its messages
        no model streamed go too (unless `told` elsewhere); wait until every event is sent.
        `traced_writes`: what tracers record of the writes, by the node's TracePolicy."""
        if self.handler is not None and writes and told:
            self.handler.node_returned([v for w in writes.values() for v in (
                w.values if isinstance(w, Repeated) else (w,))])
        if self.node_run is not None and self.node_run.input is not None:
            if error is None:
                update: Any = shown_writes(writes)
                if self.entrypoint:  # (an entrypoint's node run ends with its value only)
                    update = update.get("output")
                self.node_run.end(update, traced_writes)
            else:
                self.node_run.error(error)
        await self.emit.close()


def traced(event: tuple[str, dict[str, Any]], shown: tuple[bool, Any] | None
           ) -> tuple[str, dict[str, Any]]:
    """A "tasks" event with the value tracers record instead of its payload's (`shown`, when
    changed and sendable), beside the payload: the "tasks" stream mode never shows it."""
    if shown is None or not shown[0]:
        return event
    try:
        codec.packb(shown[1])
    except Exception:  # noqa: BLE001 - fail open: tracers record the real value
        return event
    return event[0], {**event[1], "traced": shown[1]}


def available() -> bool:
    try:
        import langchain_core.callbacks  # noqa: F401
    except ImportError:
        return False
    return True


def messages_handler(emit: Emit, node_metadata: Mapping[str, Any], *, v2: bool = False) -> Any:
    """A callback handler sending the node's chat-model tokens to `emit` as (chunk, metadata).

    With `v2` (a `stream_events(version="v3")` run), models stream protocol events instead of
    chunks: `(event, metadata with the model call's run_id)`, from message-start to
    message-finish; messages a node returns still go whole, except tools' results.
    """
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import BaseMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk

    try:
        from langchain_core.tracers._streaming import _StreamingCallbackHandler as Streaming
    except ImportError:  # (an older langchain-core: models stream only when asked to)
        Streaming = object  # type: ignore[assignment,misc]  # noqa: N806
    bases: tuple[type, ...] = (BaseCallbackHandler, Streaming)
    if v2:
        try:
            from langchain_core.tracers._streaming import _V2StreamingCallbackHandler
            bases += (_V2StreamingCallbackHandler,)
        except ImportError:  # (a langchain-core without protocol events: chunks it is)
            v2 = False

    class MessagesHandler(*bases):  # type: ignore[misc]
        run_inline = True  # (in the node's thread, in order)

        def __init__(self) -> None:
            self.runs: dict[UUID, dict[str, Any]] = {}
            self.seen: set[str] = set()
            self.streamed: set[UUID] = set()  # (v2) model calls that streamed events

        def tap_output_aiter(self, run_id: UUID, output: Any) -> Any:
            return output  # (tokens come through on_llm_new_token)

        def tap_output_iter(self, run_id: UUID, output: Any) -> Any:
            return output

        def send(self, meta: dict[str, Any], message: Any, dedupe: bool = False) -> None:
            if dedupe and message.id in self.seen:
                return
            if message.id is None:
                message.id = str(uuid4())
            self.seen.add(message.id)
            emit((message, meta))

        def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                                tags: list[str] | None = None,
                                metadata: dict[str, Any] | None = None, **_: Any) -> None:
            if tags and NOSTREAM in tags:
                return
            meta = {**node_metadata, **(metadata or {})}
            user_tags = [t for t in tags or () if not t.startswith(("seq:", "langsmith:",
                                                                     "graph:step"))]
            if user_tags:
                meta["tags"] = user_tags
            self.runs[run_id] = meta

        def on_llm_new_token(  # type: ignore[override]
            self, token: str, *, chunk: Any = None, run_id: UUID, **_: Any
        ) -> None:
            if not v2 and isinstance(chunk, ChatGenerationChunk) and run_id in self.runs:
                self.send(self.runs[run_id], chunk.message)

        def on_stream_event(self, event: dict[str, Any], *, run_id: UUID, **_: Any) -> None:
            if (meta := self.runs.get(run_id)) is None:
                return
            if event.get("event") == "message-start":
                self.streamed.add(run_id)
                if event.get("message_id"):
                    self.seen.add(event["message_id"])
            emit((event, {**meta, "run_id": str(run_id)}))

        def on_llm_end(self, response: Any, *, run_id: UUID, **_: Any) -> None:
            meta = self.runs.pop(run_id, None)
            if meta is not None and response.generations and response.generations[0]:
                generation = response.generations[0][0]
                if not isinstance(generation, ChatGeneration):
                    pass
                elif run_id in self.streamed:  # (its events told it: not again whole)
                    generation.message.id = generation.message.id or str(uuid4())
                    self.seen.add(generation.message.id)
                else:
                    self.send(meta, generation.message, dedupe=True)
            self.streamed.discard(run_id)

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **_: Any) -> None:
            self.runs.pop(run_id, None)
            self.streamed.discard(run_id)

        def node_started(self, node_input: Any) -> None:
            """The messages of the node's input are not the node's: never sent."""
            self.seen.update(m.id for m in _messages(node_input, BaseMessage) if m.id)

        def node_pushed(self, message: Any) -> None:
            """A message the node pushed (`push_message`): sent at once, even if sent before."""
            self.send(dict(node_metadata), message)

        def node_returned(self, update: Any) -> None:
            """The messages the node returns that no model streamed: sent whole."""
            for message in _messages(update, BaseMessage):
                if not (v2 and isinstance(message, ToolMessage)):  # (v2: a tool's, not chat)
                    self.send(dict(node_metadata), message, dedupe=True)

    return MessagesHandler()


def _messages(value: Any, kind: type) -> Iterable[Any]:
    """The messages among a state's (or an update's) top-level values and their lists."""
    if isinstance(value, kind):
        yield value
        return
    if isinstance(value, Mapping):
        values: Iterable[Any] = value.values()
    elif isinstance(value, pydantic.BaseModel):
        values = [getattr(value, k) for k in type(value).model_fields]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        values = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        values = value
    else:
        return
    for item in values:
        if isinstance(item, kind):
            yield item
        elif isinstance(item, Sequence) and not isinstance(item, str | bytes):
            yield from (x for x in item if isinstance(x, kind))


_SENT_ALL: Any = object()  # (queued by `OrderedEmitter.stop`: the sender's last item)


class OrderedEmitter:
    """Sends a task's events to its run's stream in the order they were made, from any thread,
    without making the node wait: one sender per task, fed by a queue. Both are made with the
    first event: most tasks send none, and a task per node would cost each step a task."""

    def __init__(self, send: Callable[[Any], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.send = send
        self.loop = loop
        self.queue: asyncio.Queue[Any] | None = None
        self.sender: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def __call__(self, item: Any) -> None:
        if _on_loop(self.loop):
            self._put(item)
        else:
            self.loop.call_soon_threadsafe(self._put, item)

    def _put(self, item: Any) -> None:
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.sender = self.loop.create_task(self._drain(self.queue))
        self.queue.put_nowait(item)

    async def _drain(self, queue: asyncio.Queue[Any]) -> None:
        while True:
            item = await queue.get()
            if item is _SENT_ALL:
                queue.task_done()
                return
            try:
                await self.send(item)
            except Exception as exc:  # (told once the node is done: see `close`)
                self.error = exc
            finally:
                queue.task_done()

    async def sent(self) -> None:
        """Wait until every event made so far is sent."""
        if self.queue is not None:
            await self.queue.join()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Let the sender send what is queued, then end: its node was cancelled, and nothing
        waits for it (a sender left pending would outlive an embedded pool's loop)."""
        if self.queue is not None:
            self.queue.put_nowait(_SENT_ALL)

    async def close(self) -> None:
        """Wait until every event made so far is sent; stop the sender (also when the wait
        is cancelled: its node was)."""
        try:
            if self.queue is not None:
                await self.queue.join()
        finally:
            if self.sender is not None:
                self.sender.cancel()
        if self.error is not None:
            raise self.error


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
