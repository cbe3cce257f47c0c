"""Runs one task's user code: the node (with its retry policy), then its conditional edges.

Sync nodes run in a thread so they never block the worker's event loop; async nodes run on it.
Parameters are injected by name as LangGraph does (`config`, `runtime`, `writer`, `store`).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import inspect
import sys
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from arqgraph import protocol
from arqgraph.config import current_config, current_pushes, current_runtime
from arqgraph.constants import CONFIG_KEY_STEP_TIMEOUT
from arqgraph.core.calls import cache_digest, cache_namespace, is_async, is_runnable
from arqgraph.core.pregel import END, START, Checkpoint, Repeated, Task, TaskOutcome, apply_writes
from arqgraph.errors import (
    ErrorInfo,
    GraphInterrupt,
    InvalidUpdateError,
    NodeCancelledError,
    NodeError,
    NodeTimeoutError,
    ParentCommand,
    is_invalid_resume,
)
from arqgraph.interrupts import BREAKPOINT, InterruptScratch, interrupt_entry, interrupt_id
from arqgraph.runtime import Runtime
from arqgraph.types import Command, RetryPolicy, Send, TimeoutPolicy, current_interrupts
from arqgraph.workers.node_results import (
    give_message_ids,
    split_result,
    with_pushed,
    write_pairs,
)
from arqgraph.workers.runnables import branch_step, run_runnable
from arqgraph.workers.subgraphs import parent_command
from arqgraph.workers.timeouts import timed, with_progress_callbacks

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph
    from arqgraph.graph.specs import NodeSpec

INJECTABLE = ("config", "runtime", "writer", "store")


class UnknownNodeError(LookupError):
    """A job names a node that the worker's graph does not have."""




def set_runnable_config(config: dict[str, Any]) -> None:
    """Make `config` the LangChain config of what the node calls (when LangChain is loaded),
    as LangGraph does: a runnable or chat model called without a config gets the node's
    callbacks, tags and metadata."""
    module = sys.modules.get("langchain_core.runnables.config")
    var = getattr(module, "var_child_runnable_config", None)
    if var is not None:
        var.set(config)


def _wanted(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The injectable parameters `fn` names. As in LangGraph, `error` only when annotated as a
    NodeError (the parameter of error handlers). Kept per function: reading a signature costs
    more than many a node (tens of microseconds per task)."""
    try:
        return _wanted_by_fn(fn)
    except TypeError:  # an unhashable callable
        return _read_wanted(fn)


def _read_wanted(fn: Callable[..., Any]) -> tuple[str, ...]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return ()
    wanted = tuple(name for name in INJECTABLE if name in params)
    error = params.get("error")
    if error is not None and (error.annotation is NodeError or error.annotation == "NodeError"):
        wanted += ("error",)
    return wanted


_wanted_by_fn = functools.lru_cache(maxsize=4096)(_read_wanted)


async def call_user(
    fn: Callable[..., Any], arg: Any, runtime: Runtime[Any], config: dict[str, Any],
    threads: Executor | None, error: NodeError | None = None, step: int = 1,
) -> Any:
    """Call a node or path function with what it asks for, in a thread if it is sync. A
    LangChain Runnable runs as LangGraph runs it (`arqgraph.workers.runnables`), as step
    `step` of its node's sequence."""
    if is_runnable(fn):
        current_config.set(config)
        current_runtime.set(runtime)
        return await run_runnable(fn, arg, config, threads, step)
    extra = {"config": config, "runtime": runtime, "writer": runtime.stream_writer,
             "store": runtime.store, "error": error}
    kwargs = {name: extra[name] for name in _wanted(fn)}
    current_config.set(config)
    current_runtime.set(runtime)
    set_runnable_config(config)
    if is_async(fn):
        return await fn(arg, **kwargs)
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(threads, lambda: context.run(fn, arg, **kwargs))
    if inspect.isawaitable(result):
        result = await result
    return result


async def run_node(
    node: NodeSpec, arg: Any, runtime: Runtime[Any], config: dict[str, Any],
    threads: Executor | None, default_timeout: float | None = None,
    policy: TimeoutPolicy | None = None,
) -> Any:
    """One attempt at a node, cancelled with a NodeTimeoutError when it overruns its timeout
    policy (`policy`, a Send's own, else the node's): its run timeout, or its idle timeout (no
    heartbeat nor, under "auto", stream write for that long); and with a TimeoutError when it
    overruns the run's `step_timeout`.

    As in LangGraph, a node's own timeout needs an async node (`compile` checks); the worker's
    default timeout also bounds sync nodes, whose thread is then abandoned.
    """
    policy = policy or node.timeout
    if policy is not None and policy.idle_timeout is not None and policy.refresh_on == "auto":
        config = with_progress_callbacks(config)
    call = call_user(node.fn, arg, runtime, config, threads)
    step = (config.get("configurable") or {}).get(CONFIG_KEY_STEP_TIMEOUT)
    try:
        if step is None:  # (most runs: no timer to arm and disarm for each node)
            return await timed(call, node.name, policy, default_timeout)
        async with asyncio.timeout(step):
            return await timed(call, node.name, policy, default_timeout)
    except TimeoutError as exc:
        if isinstance(exc, NodeTimeoutError):
            raise
        raise TimeoutError(f"Node '{node.name}' ran past the graph's step_timeout of "
                           f"{step}s") from None
    except asyncio.CancelledError:
        me = asyncio.current_task()
        if me is None or me.cancelling():  # the run was cancelled, or the worker stops
            raise
        raise NodeCancelledError(node.name) from None  # the node's own: it fails, as LangGraph's


def retry_delay(
    policies: RetryPolicy | Sequence[RetryPolicy] | None, exc: Exception, attempt: int
) -> float | None:
    """Seconds to wait before trying again after attempt number `attempt` raised `exc`, or None
    when the retry policy (the first of `policies` that applies to `exc`) says not to."""
    if policies is None:
        return None
    for policy in [policies] if isinstance(policies, RetryPolicy) else list(policies):
        if policy.should_retry(exc):
            return policy.wait_before(attempt + 1) if attempt < policy.max_attempts else None
    return None


def cache_key(node: NodeSpec, arg: Any) -> tuple[tuple[str, ...], str]:
    """A node's cache entry for this input: its namespace, and a digest of its policy's key."""
    assert node.cache_policy is not None
    return cache_namespace(node.name, node.fn), cache_digest(node.cache_policy.key_func(arg))


def _route(targets: list[Any], graph: CompiledStateGraph, source: str) -> tuple[list[str], list[Send]]:
    goto: list[str] = []
    sends: list[Send] = []
    for target in targets:
        if isinstance(target, Send):
            sends.append(target)
        elif target == END or target is None:
            continue
        elif isinstance(target, str) and target in graph.nodes:
            goto.append(target)
        else:
            raise InvalidUpdateError(f"node {source!r} routed to unknown node {target!r}")
    for send in sends:
        if send.node not in graph.nodes:
            raise InvalidUpdateError(f"node {source!r} sent to unknown node {send.node!r}")
    return goto, sends


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """A finished attempt: the outcome to post, the value of its `updates` event, and, when it
    failed and its retry policy allows another try, the seconds to wait first."""

    outcome: TaskOutcome
    shown: Any = None
    retry_after: float | None = None
    shown_as: str = ""  # the name of the `updates` event when not the node's own
    cached: bool = False  # the outcome came from the node cache: the node did not run
    traced: Any = None  # what tracers record of its writes, when its TracePolicy changes it


async def execute_task(
    graph: CompiledStateGraph,
    checkpoint: Checkpoint,
    task: Task,
    config: dict[str, Any],
    runtime: Runtime[Any],
    threads: Executor | None = None,
    *,
    attempt: int = 1,
    default_timeout: float | None = None,
    resume: Sequence[Any] = (),
    interrupt_ids: str = "",
    stop: int = 0,
    cache: Any = None,
    started: Callable[[Any], Awaitable[None]] | None = None,
    failed_before: ErrorInfo | None = None,
    answered: list[str] | None = None, handling: Callable[[ErrorInfo], None] | None = None,
) -> TaskResult:
    """Run attempt number `attempt` of a task; `interrupt()` in it returns the `resume` values
    in turn, then stops the task (its interrupt ids derive from `interrupt_ids`). `stop`, the
    run's first step plus its recursion limit, gives the managed values (`arqgraph.managed`).
    A node with a cache policy whose key `cache` holds gives the cached outcome unrun. A node
    that `failed_before` (its error handler failed after it, and the run is resumed) is not
    run again: its error handler runs again, with that error, as LangGraph's. `answered`: the
    ids of the interrupts the `resume` values answer, when known (see `InterruptScratch`).
    `handling` hears the node's error as its error handler starts.

    Never raises for a failure of user code: the failure becomes the outcome's error.
    """
    node = graph.nodes.get(task.node)
    interrupts = InterruptScratch(resume, interrupt_ids or task.id)
    interrupts.answered = answered
    current_interrupts.set(interrupts)
    key: tuple[tuple[str, ...], str] | None = None
    result: Any = None
    try:
        if task.node == START or task.update:
            result = task.arg  # (its keys that are no channel pass to its edges too)
            writes, targets = split_result(task.node, task.arg)  # (given as writes)
            targets += list(task.goto)
            shown: Any = graph.schema.state_writes(writes)
        else:
            if node is None:
                raise UnknownNodeError(
                    f"graph {graph.name!r} has no node {task.node!r} (nodes: {sorted(graph.nodes)})"
                )
            arg = task.arg if task.send_index is not None else graph.node_schemas[
                task.node].node_input(checkpoint.values, checkpoint.step, stop)
            if started is not None:  # (its "tasks" event: the node starts, with this input)
                await started(arg)
            key = cache_key(node, arg) if cache is not None and node.cache_policy else None
            if key is not None and (hit := (await cache.aget([key])).get(key)) is not None:
                outcome = replace(protocol.decode_outcome(hit), task_id=task.id)
                return TaskResult(outcome, graph.schema.state_writes(outcome.writes) or None,
                                  cached=True)
            if failed_before is not None and node.error_handler is not None:
                failure = failed_before.rebuild()
                return await _handle_error(
                    graph, checkpoint, task, node,
                    failure if isinstance(failure, Exception) else RuntimeError(str(failure)),
                    config, runtime, threads, stop, handling)
            pushes: list[tuple[str, Any]] = []
            token = current_pushes.set(pushes)
            try:
                result = await run_node(node, arg, runtime, config, threads, default_timeout,
                                        None if task.timeout is None else TimeoutPolicy(
                                            *task.timeout))  # type: ignore[arg-type]
            finally:
                current_pushes.reset(token)
            if (command := parent_command(result)) is not None:
                raise ParentCommand(command)
            result = with_pushed(result, pushes)
            writes, targets = split_result(task.node, result, graph.schema)
            if writes is not None:  # (keys of no channel are dropped, a subgraph's among them)
                writes = graph.schema.state_writes(writes)
                give_message_ids(graph.schema, writes)
            shown = writes or None
            if any(isinstance(v, Repeated) for v in (writes or {}).values()):
                # a key written twice: the update event lists each write, as LangGraph's
                shown = [graph.schema.state_writes({k: v})
                         for k, v in write_pairs(task.node, result, graph.schema)]
                shown = [w for w in shown if w]
        if task.node in graph.branches:
            own = TaskOutcome(task_id=task.id, node=task.node, writes=writes)
            seen = apply_writes(graph.schema, checkpoint.values, [own])
            for i, branch in enumerate(graph.branches[task.node]):
                reads = graph.branch_schemas[(task.node, i)]
                state = reads.node_input(seen, checkpoint.step, stop)
                if branch.input_schema is None and isinstance(state, dict) and isinstance(
                        result, dict):  # (keys of no channel pass to the edge, as LangGraph)
                    state = {**result, **state}
                picked = await call_user(branch.path, state, runtime, config, threads,
                                         step=branch_step(node and node.fn, i))
                targets += branch.resolve(picked)
        goto, sends = _route(targets, graph, task.node)
        outcome = TaskOutcome(task.id, task.node, writes, tuple(goto), tuple(sends))
        if key is not None and node is not None and node.cache_policy is not None:
            await cache.aset({key: (protocol.encode_outcome(outcome), node.cache_policy.ttl)})
        return TaskResult(outcome, shown)
    except ParentCommand as exc:
        command = exc.args[0]
        if command.graph == Command.PARENT:  # on to the graph that runs this one as a subgraph
            error = protocol.parent_command_error(command, task.node)
            return TaskResult(TaskOutcome(task.id, task.node, error=error))
        # a subgraph this node ran sent it for this graph: it is the node's own result
        writes, targets = split_result(task.node, command, graph.schema)
        goto, sends = _route(targets, graph, task.node)
        outcome = TaskOutcome(task.id, task.node, writes, tuple(goto), tuple(sends))
        return TaskResult(outcome, graph.schema.state_writes(writes) or None)
    except GraphInterrupt as exc:
        base = interrupt_ids or task.id  # (NodeInterrupt raises interrupts without ids)
        asked = tuple(interrupt_entry(i if i.id else replace(i, id=interrupt_id(base, n)))
                      for n, i in enumerate(exc.interrupts)) or (BREAKPOINT,)
        return TaskResult(TaskOutcome(task.id, task.node, interrupts=asked))
    except Exception as exc:
        scratch = current_interrupts.get()
        if is_invalid_resume(exc) and scratch is not None and scratch.refused is not None:
            # the run fails, the interrupt stays unanswered: it can be answered again
            return TaskResult(TaskOutcome(task.id, task.node, error=ErrorInfo.of(exc, task.node),
                                          interrupts=(scratch.refused,)))
        delay = retry_delay(node.retry_policy if node else None, exc, attempt)
        if delay is None and node is not None and node.error_handler is not None:
            return await _handle_error(graph, checkpoint, task, node, exc, config, runtime,
                                       threads, stop, handling)
        failed = TaskOutcome(task.id, task.node, error=ErrorInfo.of(exc, task.node))
        return TaskResult(failed, retry_after=delay)


async def _handle_error(
    graph: CompiledStateGraph, checkpoint: Checkpoint, task: Task, node: NodeSpec,
    exc: Exception, config: dict[str, Any], runtime: Runtime[Any], threads: Executor | None,
    stop: int, handling: Callable[[ErrorInfo], None] | None = None,
) -> TaskResult:
    """A node failed for good: its error handler's result stands in for the node's, and goes
    only where the handler routes it (the node's own edges are not followed)."""
    assert node.error_handler is not None
    arg = task.arg if task.send_index is not None else graph.node_schemas[task.node].node_input(
        checkpoint.values, checkpoint.step, stop)
    node_error = ErrorInfo.of(exc, task.node)
    if handling is not None:
        handling(node_error)
    try:
        result = await call_user(node.error_handler, arg, runtime, config, threads,
                                 error=NodeError(node.name, exc))
        writes, targets = split_result(node.handler_name, result, graph.schema)
        goto, sends = _route(targets, graph, node.name)
    except Exception as failed:
        error = ErrorInfo.of(failed, task.node)
        return TaskResult(TaskOutcome(task.id, task.node, error=error, node_error=node_error))
    shown = graph.schema.state_writes(writes) or None
    outcome = TaskOutcome(task.id, task.node, writes, tuple(goto), tuple(sends),
                          node_error=node_error)
    return TaskResult(outcome, shown, shown_as=node.handler_name)
