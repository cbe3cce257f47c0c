"""Subgraphs on the worker: a compiled graph that a task runs (as its node, or invoked inside
its node) becomes a child run of its own, whose nodes are jobs on the pool like any other.

The task waits for the child run's end without holding a worker slot, and takes its output as
the node's result. The child run's id derives from the task's attempt and its place among the
task's subgraph calls, so a redelivered job finds the child run it started and waits for it:
the child's finished steps are not run again. The child's checkpoints live on the parent's
thread under a checkpoint namespace (`node:task-uuid`, nested with `|`), where a resumed parent
task finds them: an interrupt inside the child stops the parent task with the child's
interrupts, and answering them resumes the child where it stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from arqgraph import protocol
from arqgraph.constants import (
    CONFIG_KEY_DURABILITY,
    CONFIG_KEY_INTERRUPT_AFTER,
    CONFIG_KEY_INTERRUPT_BEFORE,
    CONFIG_KEY_STREAM_MESSAGES_V2,
)
from arqgraph.core.graphs import child_graph, remember
from arqgraph.core.schema import ROOT
from arqgraph.errors import GraphInterrupt, ParentCommand, RunCancelledError
from arqgraph.observe import traces
from arqgraph.protocol import RunRecord
from arqgraph.storage import replay, run_events
from arqgraph.storage.ends import EndWatch
from arqgraph.storage.inputs import run_input
from arqgraph.storage.namespaces import NAMESPACE_SEPARATOR, namespace, task_uuid
from arqgraph.storage.runs import NO_RESUME, RunStore
from arqgraph.types import Command

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph

async def run_subgraph(
    store: RunStore, record: RunRecord, checkpoint_id: str, task_id: str, node: str,
    attempt: int, n: int, graph: CompiledStateGraph, input: Any, config: dict[str, Any],
    resume: list[Any], released: Any, ends: EndWatch | None = None, sent: Any = None,
) -> Any:
    """Run `graph` as child run number `n` of a task and return its output. `resume`: the
    values the parent task was resumed with (the last answers the child's interrupts);
    `released`: awaited once the child run exists, to give the worker slot back meanwhile."""
    run_id, _ = await start_subgraph(store, record, checkpoint_id, task_id, node, attempt, n,
                                     graph, input, config, resume, ends, sent)
    await released()
    # Told by the orchestrator that ends it (one blocked connection for all of this worker's
    # waits), else (a redelivered task: the child tells its first waiter) by its events.
    end = await ends.end_of(run_id) if ends is not None else None
    if end is None:
        async for mode, payload in store.events.read(run_id):
            if mode == "end":
                end = dict(payload)
    return output_of(graph, end or {})


async def stream_subgraph(
    store: RunStore, record: RunRecord, checkpoint_id: str, task_id: str, node: str,
    attempt: int, n: int, graph: CompiledStateGraph, input: Any, config: dict[str, Any],
    resume: list[Any], released: Any, ends: EndWatch | None, sent: Any,
    modes: Sequence[str], subgraphs: bool, box: dict[str, Any],
) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
    """`run_subgraph` for a node that streams the subgraph: the child run's (namespace, mode,
    payload) events in `modes` as they come, with `subgraphs` its subgraphs' too (each with
    its whole namespace, the child's own included, as LangGraph's), then its output in
    `box["output"]`; its error or interrupts raised."""
    recorded = tuple(m for m in modes if m not in ("values", "updates", "custom"))
    # (its writes go to the node only; so do its chat models' chunks under a caller's v3
    # stream, whose messages are protocol events: the node reads chunks, as LangGraph's)
    v3 = bool((config.get("configurable") or {}).get(CONFIG_KEY_STREAM_MESSAGES_V2))
    private = tuple(m for m in ("custom", "messages") if m in modes and (m == "custom" or v3))
    run_id, ns = await start_subgraph(store, record, checkpoint_id, task_id, node, attempt, n,
                                      graph, input, config, resume, ends, sent, recorded,
                                      private)
    await released()
    own = tuple(ns.split(NAMESPACE_SEPARATOR)) if ns else ()
    key = "output" if graph.returns_value else ROOT if graph.schema.kind == "root" else None
    ended: dict[str, Any] = {}
    try:
        async for inner, mode, payload in run_events.stream(store, run_id, list(modes), True,
                                                            key, ended):
            if subgraphs or not inner:
                yield inner or own, mode, payload
    except Exception:
        if ended:  # (the subgraph's error as a node's: a command for the parent...)
            output_of(graph, ended)
        raise
    box["output"] = output_of(graph, ended)


async def start_subgraph(
    store: RunStore, record: RunRecord, checkpoint_id: str, task_id: str, node: str,
    attempt: int, n: int, graph: CompiledStateGraph, input: Any, config: dict[str, Any],
    resume: list[Any], ends: EndWatch | None = None, sent: Any = None,
    modes: tuple[str, ...] = (), private: tuple[str, ...] = (),
) -> tuple[str, str]:
    """Start child run number `n` of a task (unless it exists: a redelivered task's), with
    the parent's recorded stream modes and `modes`; its run id and namespace. The events of
    its `private` modes are for the node streaming it only: not read into the parent's."""
    task = task_uuid(record, checkpoint_id, task_id)
    own = own_thread(config)
    ns = "" if own is not None else namespace(record, node, task, graph, n)
    user_thread, _ = protocol.split_thread(record.thread_id)
    if own is not None:  # a root graph on a thread of its own, as LangGraph runs it
        keep = graph.checkpointer is not None or graph.persistence is True
        thread = own if keep else f"{record.run_id}:{task}:{n}"
    else:
        keep = record.keep and graph.persistence is not False
        thread = protocol.child_thread(user_thread, ns) if keep else f"{record.run_id}:{task}:{n}"
    run_id = protocol.child_run_id(thread, record.run_id, f"{checkpoint_id}:{task_id}:{n}:{attempt}")
    name = child_graph(record.graph, remember(graph))
    if await store.status(run_id) is None:
        if keep and own is None:
            await store.threads.note_child(record.tag, checkpoint_id, task_id, n, ns)
        if sent is not None:  # (what the task told before, first: readers go in order)
            await sent()
        if own is not None:  # (only what its callbacks tell reaches callers, as LangGraph's)
            private = tuple(sorted({*private, *OWN_THREAD_PRIVATE}))
        await store.events.emit(record.run_id, "child", {
            "run_id": run_id, "ns": ns, **({"private": list(private)} if private else {})})
        # time travel: the checkpoint the parent's replay names for it, or its state before
        start = await replay.child_start(store, record, ns, thread) if (
            keep and own is None) else None
        if resume and start is not None and start[0] == "before":  # (answers go to its latest)
            start = None
        exact = start is not None and start[0] == "exact"
        # (interrupted, at a breakpoint, or failed): go on; answers are the child's only then.
        # In the first step of a resumed run, a child that ended goes on too, so ends at once:
        # LangGraph's parent hands its subgraphs its resuming flag for that step.
        left = (await _tasks_left(store, thread) if start is None and keep and own is None
                else None)
        stopped = bool(left)
        ended = left is False and record.kind == "resume" and (
            checkpoint_id == record.first_checkpoint)
        if resume and (exact or stopped):
            kind, child_input, answer = "resume", None, resume[-1]
        elif exact or stopped or ended:
            kind, child_input, answer = "resume", None, NO_RESUME
        else:  # (a call made after the task's own interrupt was answered starts afresh)
            kind, child_input, answer = run_input(  # (fails as the run's values do if need be)
                input, graph.returns_value, graph.schema.kind == "root", keep, same_process=True)
        # (a node streaming "messages" itself reads chunks, whatever its caller reads)
        dropped = ("checkpoint_id", CONFIG_KEY_INTERRUPT_BEFORE, CONFIG_KEY_INTERRUPT_AFTER,
                   *((CONFIG_KEY_STREAM_MESSAGES_V2,) if "messages" in private else ()))
        configurable = {k: v for k, v in (config.get("configurable") or {}).items()
                        if k not in dropped}
        # (the thread id its nodes see is the caller's, as in LangGraph: none without one)
        configurable.update(checkpoint_ns=ns, checkpoint_map={} if own is not None else
                            replay.child_map(record, checkpoint_id))
        given = record.config.get("configurable") or {}
        if replay.REPLAY in given:
            configurable[replay.REPLAY] = given[replay.REPLAY]
        if CONFIG_KEY_DURABILITY in given:  # (as LangGraph's config carries it into a graph
            configurable.setdefault(CONFIG_KEY_DURABILITY, given[CONFIG_KEY_DURABILITY])  # a
            # node invokes)
        child_config = {k: v for k, v in config.items() if k not in ("callbacks", "metadata")}
        child_config["configurable"] = configurable
        if record.config.get("metadata"):  # (the caller's own, as LangGraph's nodes inherit it)
            child_config["metadata"] = record.config["metadata"]
        await store.create_run(
            run_id, name, thread_id=thread, keep=keep, kind=kind, input=child_input,
            config=child_config, context=record.context,
            modes=tuple(m for m in dict.fromkeys((*record.modes, *modes))
                        if m != protocol.END_ONLY),  # (its caller may read its events)
            waiter=ends.waiter if ends is not None else "",
            resume=answer, from_checkpoint=start[1] if start is not None else "",
            trace=traces.current_or(""))  # (its steps under the span of the node running it)
    return run_id, ns


# the events of a root graph on a thread of its own that its caller's stream does not show:
# all but those its LangChain callbacks make ("messages", "tools")
OWN_THREAD_PRIVATE = ("values", "updates", "custom", "tasks", "checkpoints")


def own_thread(config: Mapping[str, Any] | None) -> str | None:
    """The thread a config given to a graph invoked inside a node makes it run on as a root
    graph: a `thread_id` given without the node's `checkpoint_ns` (LangGraph: a config with its
    own checkpoint coordinates addresses its own lineage, at the root namespace)."""
    configurable = (config or {}).get("configurable") or {}
    thread = configurable.get("thread_id")
    if thread is None or configurable.get("checkpoint_ns"):
        return None
    return str(thread)


async def _tasks_left(store: RunStore, thread: str) -> bool | None:
    """Whether the subgraph's thread stopped with tasks left (its task is running again after
    the stop, and the subgraph goes on from there); None if it has no checkpoint yet."""
    latest = await store.threads.latest_checkpoint(protocol.thread_tag(thread))
    return None if latest is None else bool(latest.checkpoint.tasks)


def output_of(graph: CompiledStateGraph, end: dict[str, Any]) -> Any:
    """The child run's result as the node's: its output; its interrupts raised for the parent
    task; its error raised as the node's."""
    status = end.get("status")
    if status == "failed":
        error = protocol.rebuild_error(protocol.decode_error(end["error"]))
        if isinstance(error, ParentCommand):  # for this graph: the task that ran the subgraph's
            raise ParentCommand(replace(error.args[0], graph=None))
        raise error
    if status == "cancelled":
        raise RunCancelledError("the subgraph's run was cancelled")
    output = end.get("output")
    if status == "interrupted":
        raise GraphInterrupt(tuple((output or {}).get("__interrupt__", ())))
    key = "output" if graph.returns_value else ROOT if graph.schema.kind == "root" else None
    if key is not None and isinstance(output, dict):
        return output.get(key)
    return output


def parent_command(result: Any) -> Command[Any] | None:
    """The `Command(graph=Command.PARENT)` a node returned (alone or in a list), if any."""
    commands = result if isinstance(result, list | tuple) else [result]
    return next((c for c in commands if isinstance(c, Command) and c.graph == Command.PARENT),
                None)
