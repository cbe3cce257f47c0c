"""The embedded default: orchestrator, worker and client in this process over an in-memory store.

It is the cluster code, not a second implementation: the same orchestrator, the same arq worker
and the same client, wired to the in-memory store (`arqgraph.storage.in_memory`: the protocol
answered from plain Python objects) instead of a Redis server. `compiled.invoke()` and the
`arqgraph run` command use it unless told to use a cluster.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import threading
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.client import Client, RunHandle, require_thread
from arqgraph.orchestrator.service import Orchestrator
from arqgraph.protocol import InboxNote
from arqgraph.run_report import GraphRun
from arqgraph.runtime import RunControl
from arqgraph.storage.connection import job_deserializer, job_serializer
from arqgraph.storage.in_memory import Keyspace, MemoryRedis
from arqgraph.workers.worker import build_worker

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph

# the events of the nodes' callbacks and of their task calls, for the producer's handlers
REPORTED = ("callbacks", "calls")
# how long the embedded worker holds a job: only this process reads its store, so a lease
# never lapses for a dead worker; it must not lapse while an async node blocks the loop
LEASE = 3600.0
ORPHANS_END_WITHIN = 10.0  # seconds a stopping embedded cluster waits for its cancelled runs

T = TypeVar("T")


def in_memory_redis(keyspace: Keyspace | None = None) -> MemoryRedis:
    """The in-memory store speaking arq's msgpack job format: a fresh one, or the one a
    checkpointer keeps."""
    return MemoryRedis(keyspace, job_serializer=job_serializer, job_deserializer=job_deserializer)


class EmbeddedCluster:
    """An orchestrator and a worker for `graphs`, plus a client, sharing one in-memory Redis
    (`history_depth`: the orchestrator's, 0 keeps every checkpoint)."""

    def __init__(
        self, graphs: Sequence[CompiledStateGraph], *, concurrency: int = 1000,
        redis: ArqRedis | None = None, history_depth: int = 0,
    ) -> None:
        self.graphs = list(graphs)
        self.history_depth = history_depth
        self.concurrency = concurrency
        self.redis = redis or in_memory_redis()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()

    async def __aenter__(self) -> EmbeddedCluster:
        self.orchestrator = Orchestrator(self.redis, self.graphs, sweep_interval=1.0,
                                         history_depth=self.history_depth)
        await self.orchestrator.register()
        self.worker = build_worker(
            self.redis, self.graphs, concurrency=self.concurrency, poll_delay=0.05,
            handle_signals=False, job_timeout=None, shared_cache=False, lease=LEASE,
        )
        self.client = Client(self.redis, ready_timeout=0)  # (its graphs are registered first)
        self.client.same_process = True  # (its classes defined inside functions are known)
        # One process, one store: what the orchestrator commits, the worker need not read back
        # and decode (a run's first task, a step the orchestrator moved), nor the other way.
        self.worker.runner.store.cache = self.orchestrator.store.cache
        self._tasks = [
            asyncio.create_task(self.orchestrator.serve(self._stop)),
            asyncio.create_task(self.worker.main()),
        ]
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self._end_orphans()
        self._stop.set()
        await self.orchestrator.store.events.notify(self.graphs[0].name, InboxNote(kind="wake", run_id=""))
        await self.worker.stop()
        jobs = list(self.worker.tasks.values())
        for job in jobs:
            job.cancel()
        await asyncio.gather(*self._tasks, *jobs, return_exceptions=True)
        self.worker.threads_shutdown()
        keeper = self.worker.keeper.task if self.worker.keeper is not None else None
        if keeper is not None:  # (on this loop: see LeaseKeeper.start)
            await asyncio.gather(keeper, return_exceptions=True)
        await self.redis.aclose()

    async def _end_orphans(self) -> None:
        """Cancel the runs still going that no call follows any more (a stream its caller
        closed early), and let the orchestrator end them before it stops: else their threads
        would stay busy, as no process would be left to end them."""
        if not self._tasks or self._tasks[0].done():  # (its loop is closing: none can end them)
            return
        store, names = self.orchestrator.store, [g.name for g in self.graphs]
        orphans = [run for name in names for run in await store.active_runs(name)]
        for run_id in orphans:
            await store.request_cancel(run_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ORPHANS_END_WITHIN
        while orphans and await store.any_active(names) and loop.time() < deadline:
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def backend(graph: CompiledStateGraph[Any, Any, Any, Any]) -> AsyncIterator[Client]:
    """A client for where `graph` runs: its cluster, or an embedded one over the in-memory store
    of its checkpointer (threads live as long as it) or a fresh one."""
    if graph.cluster_url is not None:
        client = await Client.connect(graph.cluster_url)
        try:
            yield client
        finally:
            await client.close()
        return
    keyspace = getattr(graph.checkpointer, "keyspace", None)
    on_loop = _SHARED.setdefault(asyncio.get_running_loop(), {})
    key = (id(graph), id(keyspace))
    shared = on_loop.get(key)
    if shared is None:
        shared = on_loop[key] = _Shared(EmbeddedCluster([graph], redis=in_memory_redis(keyspace)))
    shared.users += 1
    try:
        await asyncio.shield(shared.started)
        yield shared.client
    finally:
        shared.users -= 1
        if not shared.users:
            if on_loop.get(key) is shared:
                del on_loop[key]
            await shared.client.ends.close()
            await shared.cluster.__aexit__(None, None, None)


class _Shared:
    """An embedded cluster the calls of one graph running at once on one loop share, started
    on the first and stopped when the last ends: a thousand concurrent `ainvoke`s run on one
    orchestrator and one worker, not a thousand, and are one client of it, whose one
    listener hears the ends of all their runs. Its processes start in a context of their
    own, not in that of the call that happened to come first."""

    def __init__(self, cluster: EmbeddedCluster) -> None:
        self.cluster = cluster
        self.users = 0
        self.client = Client(cluster.redis, ready_timeout=0)
        self.client.same_process = True  # (its classes defined inside functions are known)
        self.started = asyncio.get_running_loop().create_task(
            _enter(cluster), context=contextvars.Context())


async def _enter(cluster: EmbeddedCluster) -> None:
    await cluster.__aenter__()


# loop -> (graph, keyspace) -> the cluster its calls share (a loop's go with it)
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, int], _Shared]] = (
    weakref.WeakKeyDictionary())


def _check_thread(graph: CompiledStateGraph[Any, Any, Any, Any], config: dict[str, Any] | None) -> None:
    """As LangGraph: an embedded graph with a checkpointer needs a thread id for each run."""
    if graph.cluster_url is None and graph.checkpointer is not None:
        require_thread(config)


def _fresh(graph: CompiledStateGraph[Any, Any, Any, Any]) -> bool:
    """As LangGraph: a graph compiled without a checkpointer keeps no thread, so its runs start
    afresh. (Embedded, its in-memory Redis lives for one call anyway; on a cluster the run is
    told.)"""
    return graph.checkpointer is None


async def stream_graph(
    graph: CompiledStateGraph[Any, Any, Any, Any], input: Any, config: dict[str, Any] | None,
    modes: Sequence[str], context: Any = None, subgraphs: bool = False,
    control: RunControl | None = None,
) -> AsyncIterator[tuple[Any, ...]]:
    """Run `graph` once and yield its (namespace, mode, payload) events, its subgraphs' too
    with `subgraphs`; raise its error if it fails."""
    _check_thread(graph, config)
    config, report = await GraphRun.start(config, input, run_name(graph))
    try:
        async with backend(graph) as client:
            await resumed(report, client, config, input)
            handle = await client.submit(graph.name, input, config, context=context,
                                         fresh_thread=_fresh(graph),
                                         stream_mode=modes)
            heard = [*modes, *REPORTED] if report is not None else list(modes)
            deep = subgraphs or report is not None  # (the subgraphs' nodes report too)
            async with followed(control, client, handle):
                async for event in handle.stream(heard, subgraphs=deep):
                    ns, mode, payload = event if deep else ((), *event)
                    if mode in REPORTED and report is not None:
                        await report.replay(mode, payload)
                    elif subgraphs or not ns:
                        yield ns, mode, payload
            if report is not None:
                end = await handle.end()
                await report.end(handle.output_of(end), end)
    except Exception as exc:
        if report is not None:
            await report.error(exc)
        raise


async def invoke_graph(
    graph: CompiledStateGraph[Any, Any, Any, Any], input: Any, config: dict[str, Any] | None,
    context: Any = None, control: RunControl | None = None,
) -> Any:
    _check_thread(graph, config)
    config, report = await GraphRun.start(config, input, run_name(graph))
    try:
        async with backend(graph) as client:
            await resumed(report, client, config, input)
            handle = await client.submit(graph.name, input, config, context=context,
                                         fresh_thread=_fresh(graph), end_only=True)
            async with followed(control, client, handle):
                if report is not None:  # (the nodes' callbacks, as they come)
                    async for _, mode, event in handle.stream(list(REPORTED), subgraphs=True):
                        await report.replay(mode, event)
                end = await handle.end()
            output = handle.output_of(end)
    except Exception as exc:
        if report is not None:
            await report.error(exc)
        raise
    if report is not None:
        await report.end(output, end)
    return output


def run_name(graph: CompiledStateGraph[Any, Any, Any, Any]) -> str:
    """The name of a run reported to callbacks: the graph's; LangGraph's own for an
    entrypoint (its graph is registered by the function's name, its run is "LangGraph")."""
    return "LangGraph" if graph.returns_value else graph.name


async def resumed(report: GraphRun | None, client: Client, config: dict[str, Any] | None,
                  input: Any) -> None:
    """Tell the report's graph handlers that the run goes on from its thread's checkpoint,
    when it does (as LangGraph: its input is None or a Command, and the thread has one)."""
    if report is None or not report.graph.handlers or not GraphRun.resumes(input):
        return
    if not ((config or {}).get("configurable") or {}).get("thread_id"):
        return
    state = await client.get_state(config or {})
    await report.resumed((state.config.get("configurable") or {}).get("checkpoint_id"))


@contextlib.asynccontextmanager
async def followed(control: RunControl | None, client: Client, handle: RunHandle
                   ) -> AsyncIterator[None]:
    """While its caller follows a run: a drain asked of `control` goes to the run (see
    `draining`). A run its caller stops following (a stream closed early, a cancelled call)
    is cancelled: the embedded cluster it runs on may outlive the call, other calls sharing
    it. The cancel is sent from a task of its own: a stream closed by the garbage collector
    must not wait on it. (A run that failed is over already: nothing to cancel.)"""
    try:
        with draining(control, client, handle):
            yield
    except (GeneratorExit, asyncio.CancelledError):
        if client.same_process:  # (a cluster's run goes on, as a producer's does)
            cancel = asyncio.get_running_loop().create_task(_cancel(handle))
            _CANCELS.add(cancel)
            cancel.add_done_callback(_CANCELS.discard)
        raise


async def _cancel(handle: RunHandle) -> None:
    with contextlib.suppress(Exception):  # (its cluster may be gone by then: nothing to stop)
        await handle.cancel()


_CANCELS: set[asyncio.Task[None]] = set()  # (cancels on their way, kept from the collector)


@contextlib.contextmanager
def draining(control: RunControl | None, client: Client, handle: RunHandle) -> Iterator[None]:
    """While a run is followed, a drain its `control` is asked for goes to its orchestrator:
    embedded, at once (the node that asks is still running: the step it is in is the last),
    else as soon as this loop gets to it."""
    if control is None:
        yield
        return
    loop = asyncio.get_running_loop()
    redis = client.redis

    def tell(reason: str) -> None:
        if isinstance(redis, MemoryRedis):
            redis.call("HSETNX", protocol.run_key(handle.run_id), "drain", reason)
            redis.call("LPUSH", protocol.inbox_key(handle.graph),
                       protocol.encode_note(InboxNote(kind="drain", run_id=handle.run_id)))
        else:
            asyncio.run_coroutine_threadsafe(
                client.store.request_drain(handle.run_id, reason), loop)

    stop = control.on_drain(tell)
    try:
        yield
    finally:
        stop()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def iterate_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async generator from sync code, on a private event loop in a thread.

    One left unfinished (a loop broken out of) is closed at exit, while the interpreter can
    still run the run's cleanup: closed later, by the garbage collector, it would hang."""
    iterator = _iterate_sync(agen)
    _OPEN.add(iterator)
    return iterator


_OPEN: weakref.WeakSet[Iterator[Any]] = weakref.WeakSet()


@atexit.register
def _close_open_iterators() -> None:
    for iterator in list(_OPEN):
        with contextlib.suppress(Exception):
            iterator.close()  # type: ignore[attr-defined]


def _iterate_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        while True:
            try:
                yield asyncio.run_coroutine_threadsafe(agen.__anext__(), loop).result()  # type: ignore[arg-type]
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            asyncio.run_coroutine_threadsafe(aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
