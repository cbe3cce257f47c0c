"""Task calls of the Functional API, on the worker: scheduling them from a running entrypoint,
and running them as jobs of their own.

A call's id is its entrypoint task's id and its place among that task's calls, so an entrypoint
run again (resumed after an interrupt, or after its worker died) finds the results of the calls
it made before, saved with the checkpoint, and does not run them again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from arq.worker import Retry

from arqgraph import observe, protocol
from arqgraph.config import current_config, current_runtime
from arqgraph.constants import CONFIG_KEY_CALLBACKS
from arqgraph.core import codec
from arqgraph.core.calls import (
    TASKS,
    RetryLater,
    TaskFunction,
    current_attempt,
    current_scheduler,
)
from arqgraph.core.pregel import Task
from arqgraph.errors import ErrorInfo, GraphInterrupt, SerializationError
from arqgraph.interrupts import NO_ANSWER, InterruptScratch, interrupt_entry, interrupt_of
from arqgraph.protocol import RunRecord
from arqgraph.runtime import Runtime
from arqgraph.storage.ends import EndWatch
from arqgraph.storage.queue import JobQueue
from arqgraph.storage.runs import Claim, RunStore
from arqgraph.types import current_interrupts
from arqgraph.workers.call_events import (
    call_event,
    call_metadata,
    call_result_event,
    call_start_event,
    made_call,
)
from arqgraph.workers.executor import retry_delay, set_runnable_config
from arqgraph.workers.subgraphs import run_subgraph, stream_subgraph
from arqgraph.workers.task_stream import TaskStream
from arqgraph.workers.timeouts import timed

Idle = Callable[[], contextlib.AbstractAsyncContextManager[None]]


def is_call(task_id: str) -> bool:
    return "/fn/" in task_id


class CallScheduler:
    """Turns the task calls of one running entrypoint into jobs and awaits their results."""

    def __init__(self, store: RunStore, record: RunRecord, checkpoint_id: str, task_id: str,
                 jobs: JobQueue, idle: Idle, node: str = "", attempt: int = 1,
                 ends: EndWatch | None = None, execution: int = 0) -> None:
        self.store = store
        self.record = record
        self.checkpoint_id = checkpoint_id
        self.task_id = task_id
        self.jobs = jobs
        self.idle = idle
        self.node = node
        self.attempt = attempt
        self.ends = ends  # how the worker hears of the ends of the child runs it waits for
        self.execution = execution  # which start of the entrypoint's task this is (its claim's)
        self.loop = asyncio.get_running_loop()
        self.calls = 0
        self.subgraphs = 0
        self.lock = threading.Lock()  # a sync entrypoint calls from its thread
        self.slot = contextlib.AsyncExitStack()  # holds the released worker slot, see `_call`
        self.released = False
        self.emit: Any = None  # the task's event emitter (its stream's), see `CallsMadeBy`
        self.sent: Any = None  # waits until the task's events so far are sent
        self.started: list[concurrent.futures.Future[Any]] = []  # the calls it made
        self.stopping: set[asyncio.Task[None]] = set()  # the cancels of calls being made

    def schedule(self, task: TaskFunction, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> concurrent.futures.Future[Any]:
        with self.lock:
            call_id = f"{self.task_id}/fn/{self.calls}"
            self.calls += 1
        arguments = {"task": task.key, "args": list(args), "kwargs": kwargs}
        scratch = current_interrupts.get()  # (the entrypoint's: its answers, in order)
        future = asyncio.run_coroutine_threadsafe(
            self._call(call_id, task.name, arguments, scratch), self.loop)
        self.started.append(future)
        return future

    def run_subgraph(self, graph: Any, input: Any, config: dict[str, Any], resume: list[Any]
                     ) -> concurrent.futures.Future[Any]:
        """Run a compiled graph as a child run of this task (`arqgraph.workers.subgraphs`)."""
        with self.lock:
            n = self.subgraphs
            self.subgraphs += 1
        return asyncio.run_coroutine_threadsafe(run_subgraph(
            self.store, self.record, self.checkpoint_id, self.task_id, self.node, self.attempt,
            n, graph, input, config, resume, self._release, self.ends, self.sent), self.loop)

    def stream_subgraph(self, graph: Any, input: Any, config: dict[str, Any],
                        resume: list[Any], modes: Sequence[str], subgraphs: bool,
                        box: dict[str, Any]) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
        """`run_subgraph`, streamed: the child run's events as they come, readable from any
        event loop (a sync node reads on a loop of its own); its output goes in `box`."""
        with self.lock:
            n = self.subgraphs
            self.subgraphs += 1
        events = stream_subgraph(
            self.store, self.record, self.checkpoint_id, self.task_id, self.node, self.attempt,
            n, graph, input, config, resume, self._release, self.ends, self.sent, modes, subgraphs,
            box)
        return on_loop(events, self.loop)

    async def _release(self) -> None:
        """Give the worker slot back while the task waits for other jobs (until it ends)."""
        with self.lock:
            if self.released:
                return
            self.released = True
        await self.slot.enter_async_context(self.idle())

    def _stop_call(self, call_id: str, call: str) -> None:
        """Cancel a call's job, in a task of its own (kept in `stopping` until it is done: the
        caller is being cancelled)."""
        stop = self.loop.create_task(self.store.calls.cancel(
            self.record.run_id, self.checkpoint_id, call_id, call))
        self.stopping.add(stop)
        stop.add_done_callback(self.stopping.discard)

    async def _call(self, call_id: str, name: str, arguments: dict[str, Any],
                    scratch: InterruptScratch | None) -> Any:
        """Run the call (or find its result), again with the next of the entrypoint's resume
        values each time it stopped at an interrupt: round r of a call runs as `<call>~r`
        with the r answers it was given. A call stopped at an interrupt nobody answered yet
        runs again, as LangGraph re-runs a task without a result, once per start of the
        entrypoint (`<call>~r#<start>`), and stops the entrypoint with its interrupt; so does a
        call that failed in an earlier start, as LangGraph keeps no result of a failure."""
        tag = self.record.tag
        saved, cancels = await self.store.calls.look(tag, self.checkpoint_id, call_id, call_id)
        base = f"{call_id}^{cancels}" if cancels else call_id  # (a call cancelled before)
        if saved is not None and self.record.records("tasks") and self.emit is not None:
            self.emit(call_start_event(self.record, self.checkpoint_id, call_id, name,
                                       arguments))  # (its result is reused: LangGraph tells
            # its start all the same, as it starts every call of the entrypoint again)
        call = base
        answers: list[Any] = []
        ran = False  # (the round ran in this start of the entrypoint)
        while True:
            if call != call_id:
                saved = await self.store.calls.result(tag, self.checkpoint_id, call)
            if saved is None:
                ran = True
                try:
                    start = functools.partial(
                        self.store.calls.start, self.record, self.checkpoint_id, call,
                        {**arguments, "resume": answers}, self.record.fingerprint, self.jobs)
                    await start()
                    await self._release()  # (given back until it ends: see `close_scheduler`)
                    saved = await self.store.calls.wait(tag, self.checkpoint_id, call, start)
                except asyncio.CancelledError:  # TaskFuture.cancel: stop its job too
                    self._stop_call(call_id, call)
                    raise
            if "error" in saved and not ran:  # (failed in an earlier start: run again)
                retried = await self._retried(f"{base}~{len(answers)}")
                if retried is None or "error" in retried:
                    call, saved = f"{base}~{len(answers)}#{self.execution}", None
                    continue
                saved = retried
            if "interrupt" not in saved:
                break
            asked = [entry[0] for entry in saved["interrupt"]]
            answer = scratch.take(asked) if scratch is not None else NO_ANSWER
            if answer is NO_ANSWER and ran:
                raise GraphInterrupt(tuple(interrupt_of(e) for e in saved["interrupt"]))
            if answer is NO_ANSWER:  # (asked in an earlier start: it runs again)
                call = f"{base}~{len(answers)}#{self.execution}"
            else:
                answers.append(answer)
                call = f"{base}~{len(answers)}"
            saved = None
        if "error" in saved:
            raise protocol.decode_error(saved["error"]).rebuild()
        return saved["value"]

    async def _retried(self, call: str) -> dict[str, Any] | None:
        """The result of the latest run of a failed call made again by an earlier start of
        the entrypoint (`<call>#<start>`), if any."""
        for start in range(self.execution - 1, 0, -1):
            saved = await self.store.calls.result(self.record.tag, self.checkpoint_id,
                                                  f"{call}#{start}")
            if saved is not None:
                return saved
        return None


async def on_loop(events: AsyncIterator[Any], loop: asyncio.AbstractEventLoop
                  ) -> AsyncIterator[Any]:
    """`events`, an async iterator that runs on `loop`, read from the caller's loop."""
    def step(coroutine: Any) -> Any:
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))

    try:
        while True:
            try:
                item = await step(anext(events))
            except StopAsyncIteration:
                return
            yield item
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await step(aclose())


class CallsMadeBy:
    """The task calls made in the block go to `scheduler` (`emit`: the calling task's event
    emitter, whose `sent` waits until what it told so far is sent); once it ends, they are
    closed (`close_scheduler`), and settled when the block returned. A class, not a generator:
    every node enters it, and a generator's context costs each a few times as much."""

    def __init__(self, scheduler: CallScheduler, emit: Any) -> None:
        self.scheduler, self.emit = scheduler, emit

    async def __aenter__(self) -> None:
        scheduler = self.scheduler
        scheduler.emit, scheduler.sent = self.emit, self.emit.sent
        current_scheduler.set(scheduler)

    async def __aexit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        await close_scheduler(self.scheduler, settle=kind is None)


async def close_scheduler(scheduler: CallScheduler, settle: bool = False) -> None:
    """The entrypoint ended: with `settle` (it returned or stopped at an interrupt, not
    cancelled), first let the calls it started and did not wait for finish, as LangGraph
    finishes a step's tasks, so that their results are saved for a resume; then take back
    the worker slot it gave while it waited."""
    if settle and (running := [f for f in scheduler.started if not f.done()]):
        await asyncio.gather(*map(asyncio.wrap_future, running), return_exceptions=True)
    if scheduler.stopping:  # (a node that made no call, most, waits for nothing)
        await asyncio.gather(*scheduler.stopping, return_exceptions=True)
    if scheduler.released:  # (else its slot holds nothing)
        await scheduler.slot.aclose()


async def run_call(
    store: RunStore, job: protocol.TaskJob, record: RunRecord, threads: Executor,
    timeout: float | None, long_term: Any = None, cache: Any = None,
    scheduler_for: Callable[[Claim, str], CallScheduler] | None = None,
) -> str:
    """Run one task call: its function with its saved arguments; save its result or error.
    While it runs, what it streams (its chat models' tokens, its tools, its custom writes)
    goes to the run's event stream as a node's does, and `get_config()`, `get_store()` and
    `get_stream_writer()` answer inside it. A task with a cache policy takes the result of
    an earlier call with its key from `cache` (its entrypoint's), unrun. The task calls it
    makes are jobs of their own too (`scheduler_for` makes their scheduler), as LangGraph's
    are tasks of their own."""
    tag = record.tag
    made_as, cancel_round = made_call(job.task_id)
    saved, cancels = await store.calls.look(tag, job.checkpoint_id, job.task_id, made_as)
    if saved is not None:
        return "skipped: already done"
    if cancels > cancel_round:
        return "skipped: cancelled"
    arguments = await store.calls.arguments(tag, job.checkpoint_id, job.task_id)
    task = TASKS.get(arguments["task"]) if isinstance(arguments, dict) else None
    claim = await store.claim_task(tag, job.checkpoint_id, job.task_id)
    if claim is None:
        return "skipped: already done"
    name = task.name if task else "?"
    attempt = observe.Attempt(job.graph, name, claim.failures + 1, job.run_id,
                              protocol.split_thread(record.thread_id)[0], job.step)
    with observe.node_attempt(attempt, job.trace):  # (its metrics, span and log context)
        try:
            if task is None:
                raise LookupError(
                    f"this worker has no task {arguments and arguments.get('task')!r} "
                    "(is the module that defines it imported by the graph's module?)")
            current_attempt.set(claim.failures + 1)
            base = job.task_id.partition("~")[0]  # (its interrupts keep their ids round to round)
            current_interrupts.set(InterruptScratch(arguments.get("resume", []),
                                                    f"{tag}:{job.checkpoint_id}:{base}"))
            key = (task.cache_key(arguments["args"], arguments["kwargs"])
                   if cache is not None else None)
            hit = (await cache.aget([key])).get(key) if key is not None else None
            if hit is not None:
                value = codec.unpackb(hit)
            else:
                nested = scheduler_for(claim, name) if scheduler_for is not None else None
                value = sendable(name, await _streamed_call(store, record, job, task, arguments,
                                                            threads, timeout, long_term, nested))
                if key is not None:
                    assert task.cache_policy is not None
                    await cache.aset({key: (codec.packb(value), task.cache_policy.ttl)})
        except GraphInterrupt as asked:  # (the entrypoint stops with it until it is answered)
            result: dict[str, Any] = {"interrupt": [interrupt_entry(i) for i in asked.interrupts]}
            events: list[tuple[Any, Any]] = []
            attempt.outcome = "interrupted"
        except asyncio.CancelledError:  # the call, its run or the worker: not a lost start
            attempt.outcome = "cancelled"
            await asyncio.shield(store.end_attempt(tag, job.checkpoint_id, job.task_id, claim,
                                                   failed=False))
            raise
        except RetryLater as later:
            attempt.outcome = "deferred"
            await store.end_attempt(tag, job.checkpoint_id, job.task_id, claim, failed=True)
            raise Retry(defer=later.delay) from later
        except Exception as exc:
            delay = retry_delay(task.retry_policy if task else None, exc, claim.failures + 1)
            attempt.failed(type(exc).__name__, str(exc), delay is not None)
            if delay is not None:
                await store.end_attempt(tag, job.checkpoint_id, job.task_id, claim, failed=True)
                raise Retry(defer=delay) from exc
            result = {"error": protocol.encode_error(ErrorInfo.of(exc, name))}
            events = []
        else:
            result = {"value": value}
            events = [("updates", {name: value, "__metadata__": {"cached": True}}
                        if hit is not None else {name: value})]
    if record.records("tasks") and "interrupt" not in result:  # (as LangGraph's: a call
        # that stopped at a question tells no result, its entrypoint tells the question)
        events.append(call_result_event(record, job, name, result))
    if (CONFIG_KEY_CALLBACKS in (record.config.get("configurable") or {}) and task is not None
            and "interrupt" not in result):  # (the producer reports the call to its handlers,
        # before the update it made, as LangGraph ends a call's run before it writes)
        told = call_event(job.task_id, task, arguments, result)
        told["metadata"] = call_metadata(record, job.checkpoint_id, job.task_id, task.name)
        events.insert(0, ("calls", told))
    try:
        posted = await store.calls.post(job.run_id, job.checkpoint_id, job.task_id, result,
                                       claim, events)
    except SerializationError as exc:  # (an event's value): the call fails, visibly
        result = {"error": protocol.encode_error(ErrorInfo.of(exc, name))}
        posted = await store.calls.post(job.run_id, job.checkpoint_id, job.task_id, result,
                                       claim)
    return {1: "done", 0: "skipped: another attempt won", -1: "fenced: a newer attempt owns it"}[
        posted
    ]


async def _streamed_call(
    store: RunStore, record: RunRecord, job: protocol.TaskJob, task: TaskFunction,
    arguments: dict[str, Any], threads: Executor, timeout: float | None, long_term: Any,
    scheduler: CallScheduler | None = None,
) -> Any:
    """The call, with a task stream as a node's: what it streams goes to the run's events;
    the calls it makes go to `scheduler`."""
    stream = TaskStream(store, record, job, Task(job.task_id, task.name, send_index=0), (),
                        node_run=False)  # (its run is reported by the producer: "calls")
    config = stream.node_config(dict(record.config))
    if record.records("tasks") and "~" not in job.task_id.rpartition("/fn/")[2]:  # (its
        # start, as a node's; once: a round after an answer is the same call, resumed)
        stream.emit(call_start_event(record, job.checkpoint_id, job.task_id, task.name,
                                     arguments))
    current_config.set(config)
    current_runtime.set(Runtime(context=record.context, store=long_term,
                                stream_writer=stream.custom))
    set_runnable_config(config)
    calls = (CallsMadeBy(scheduler, stream.emit) if scheduler is not None
             else contextlib.nullcontext())
    try:
        async with calls:
            return await _call(task, arguments["args"], arguments["kwargs"], threads, timeout)
    finally:
        await stream.close(told=False)


def sendable(name: str, value: Any) -> Any:
    """A task call's return value, checked where it is made: one msgpack cannot encode fails
    the call (under its retry policy) naming the task, the key and the type, instead of failing
    the post of its result, after which its entrypoint would wait for it forever."""
    try:
        codec.packb(value)
    except SerializationError as exc:
        if isinstance(value, Mapping):
            codec.pack_values(value, where=f"the result of task {name!r}:")  # (names the key)
        raise SerializationError(f"the result of task {name!r}: {exc}") from None
    return value


async def _call(task: TaskFunction, args: list[Any], kwargs: dict[str, Any], threads: Executor,
                timeout: float | None) -> Any:
    if asyncio.iscoroutinefunction(task.fn):
        call = task.fn(*args, **kwargs)
    else:
        context = contextvars.copy_context()
        call = asyncio.get_running_loop().run_in_executor(
            threads, functools.partial(context.run, task.fn, *args, **kwargs))
    if task.timeout is not None:  # (its own policy, as a node's)
        return await timed(call, task.name, task.timeout)
    async with asyncio.timeout(timeout):
        return await call


@contextlib.asynccontextmanager
async def no_idle() -> AsyncIterator[None]:
    yield
