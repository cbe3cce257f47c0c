"""The producer side: submit runs by graph name and follow them. Needs no graph code."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from arq.connections import ArqRedis

from arqgraph import protocol
from arqgraph.constants import COPY_NODE, PROPAGATED_TO_METADATA, START
from arqgraph.core.graphs import root_graph
from arqgraph.core.pregel import TaskOutcome, shown_writes
from arqgraph.errors import UnknownGraphError
from arqgraph.interrupts import asked_of
from arqgraph.observe import traces
from arqgraph.protocol import DeadLetter, GraphInfo, SavedCheckpoint
from arqgraph.run_handle import RunHandle as RunHandle  # (its home was here: still imported from here)
from arqgraph.storage import replay, run_events
from arqgraph.storage.connection import RETRYABLE, Backoff, connect
from arqgraph.storage.dead_letters import dead_letters
from arqgraph.storage.ends import EndWatch
from arqgraph.storage.inputs import check_config, run_input
from arqgraph.storage.runs import NO_RESUME, RunStore
from arqgraph.types import PregelTask, StateSnapshot

RECORDED_ON_ASKING = ("tasks", "checkpoints", "debug", "messages", "tools")
SUBMIT_RETRY = 30.0  # seconds a submit retries while Redis is away (Client(submit_retry=...))

log = logging.getLogger("arqgraph.client")


READY_TIMEOUT = 30.0  # seconds `submit` waits for a graph's orchestrator to register it
CONNECT_TIMEOUT = 5.0  # seconds `Client.connect` waits for an unreachable Redis
READY_POLL = 0.1
GRAPH_INFO_KEPT = 1.0  # seconds a graph's registration, once read, serves this client's submits


class Client:
    """Submits runs to the orchestrators serving a Redis (async)."""

    same_process = False  # whether the graphs run in this process (the embedded default)

    def __init__(self, redis: ArqRedis, *, submit_retry: float = SUBMIT_RETRY,
                 ready_timeout: float = READY_TIMEOUT) -> None:
        self.redis = redis
        self.store = RunStore(redis)
        self.ends = EndWatch(self.store)
        self.submit_retry = submit_retry  # seconds `submit` retries while Redis is away
        self.ready_timeout = ready_timeout  # seconds `submit` waits for a graph's registration
        self._graph_infos: dict[str, tuple[float, GraphInfo]] = {}  # (see `_check_graph`)
        self._graph_reads: dict[tuple[int, str], asyncio.Future[GraphInfo]] = {}

    @classmethod
    async def connect(
        cls, url: str, *, connect_timeout: float | None = CONNECT_TIMEOUT,
        submit_retry: float = SUBMIT_RETRY, ready_timeout: float = READY_TIMEOUT,
    ) -> Client:
        """A client of the Redis at `url`, retrying while it is unreachable for
        `connect_timeout` seconds (None or 0: for ever), then raising ConnectionError naming the URL:
        a wrong URL or a Redis that is down fails fast instead of hanging. `ready_timeout`: how
        long `submit` waits for an orchestrator to register a graph (a producer started with
        the pool must not lose the race with it)."""
        redis = await connect(url, timeout=connect_timeout, what="client")
        return cls(redis, submit_retry=submit_retry, ready_timeout=ready_timeout)

    async def close(self) -> None:
        await self.ends.close()
        await self.redis.aclose()

    async def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The newest `count` pieces of data set aside as unreadable (see
        `arqgraph.storage.dead_letters`), newest first: where each was, why, and its run."""
        return await dead_letters(self.redis, count)

    async def submit(
        self,
        graph_name: str,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        context: Any = None,
        stream_mode: str | Sequence[str] = (),
        run_id: str | None = None,
        fresh_thread: bool = False,
        end_only: bool = False,
    ) -> RunHandle:
        """Start a run of the graph registered as `graph_name` with `input`.

        `run_id`: a key of your own making the submit idempotent: submitting again with it (a
        retry after an error) gives the same run, never a second one. Lost connections are
        retried so for up to `submit_retry` seconds, with backoff.

        `stream_mode`: the modes its events will be read in. "values", "updates" and "custom"
        are always recorded; "tasks", "checkpoints", "debug" and "messages" only when asked
        for here.

        With `config["configurable"]["thread_id"]` the run continues that thread (kept until
        deleted): `input` lands on its state; `None` resumes it where it stopped (from
        `checkpoint_id` if given: an older one forks); `Command(resume=...)` answers its
        interrupts, and its `update` and `goto` apply to the stopped step before its tasks run
        again (or, on a thread with nothing to resume, are the input and where it goes).
        Without a thread id the run gets a thread of its own, expiring with it.

        `fresh_thread`: as LangGraph runs a graph compiled without a checkpointer, the run
        starts afresh on a thread of its own (expiring with it), whatever thread its config
        names; its nodes still see that config.

        `end_only`: its producer reads only its end (`handle.end()`), not its values or
        updates: those events, written at every step for a stream to read, are not written.
        """
        key = run_id or uuid.uuid4().hex  # (retried below: the same run each time)
        loop, backoff = asyncio.get_running_loop(), Backoff(0.1, 2.0)
        deadline = loop.time() + self.submit_retry
        while True:
            try:
                return await self._submit(graph_name, input, config, context, stream_mode, key,
                                          fresh_thread, end_only)
            except Exception as exc:
                if not isinstance(exc, RETRYABLE) or loop.time() + backoff.delay > deadline:
                    raise  # (Redis full refuses new runs at once: it is no blip)
                log.warning("submit: lost Redis (%s); retrying in %.1fs", exc, backoff.delay)
                await backoff.wait()

    async def _submit(
        self, graph_name: str, input: Any, config: Mapping[str, Any] | None, context: Any,
        stream_mode: str | Sequence[str], key: str, fresh_thread: bool = False,
        end_only: bool = False,
    ) -> RunHandle:
        check_config(config)
        info = await self._check_graph(graph_name)
        config = replay.from_root(with_metadata(config))  # (a subgraph's: from the root)
        thread_id, checkpoint_id = (None, "") if fresh_thread else _thread_of(config)
        kind, input, resume = run_input(input, info.entrypoint, info.root, thread_id is not None,
                                        self.same_process)
        modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
        modes = [m for m in modes if m in RECORDED_ON_ASKING]
        if end_only:
            modes.append(protocol.END_ONLY)
        thread = run_thread(key, thread_id)
        run_id = protocol.keyed_run_id(thread, key)
        if thread_id is not None and checkpoint_id and resume is NO_RESUME:  # time travel
            bound = await replay.replay_bound(self.store, thread_id or "", checkpoint_id)
            if bound is not None:
                configurable = {**(config or {}).get("configurable", {}),
                                replay.REPLAY: {"checkpoint": bound, "run": run_id}}
                config = {**(config or {}), "configurable": configurable}
        handle = await self._create(graph_name, thread_id, kind, input, config, context,
                                    resume=resume, from_checkpoint=checkpoint_id,
                                    modes=modes,
                                    run_id=run_id, own_thread=thread)
        handle.entrypoint, handle.root = info.entrypoint, info.root
        return handle

    async def _check_graph(self, graph_name: str) -> GraphInfo:
        """The graph's registration (a subgraph's root graph's, for a subgraph's update),
        waited for up to `ready_timeout`. A busy producer reads it once a second, not once a
        run, and its submits that find it out of date together share one read."""
        name = root_graph(graph_name)
        kept = self._graph_infos.get(name)
        if kept is not None and asyncio.get_running_loop().time() < kept[0]:
            return kept[1]
        key = (id(asyncio.get_running_loop()), name)  # (a future is its own loop's)
        reading = self._graph_reads.get(key)
        if reading is None:
            reading = self._graph_reads[key] = asyncio.ensure_future(
                self._read_graph(name, graph_name))
            reading.add_done_callback(lambda _: self._graph_reads.pop(key, None))
        return await asyncio.shield(reading)

    async def _read_graph(self, name: str, asked: str) -> GraphInfo:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        while (info := await self.store.graph_info(name)) is None:
            if loop.time() >= deadline:
                known = await self.store.graph_names()
                raise UnknownGraphError(
                    f"no orchestrator serves a graph named {asked!r} (waited "
                    f"{self.ready_timeout:g}s); registered graphs: "
                    f"{', '.join(known) or 'none (is an orchestrator running?)'}"
                )
            await asyncio.sleep(READY_POLL)
        self._graph_infos[name] = (loop.time() + GRAPH_INFO_KEPT, info)
        return info

    async def _create(
        self, graph_name: str, thread_id: str | None, kind: str, input: Any,
        config: Mapping[str, Any] | None, context: Any, run_id: str | None = None,
        own_thread: str | None = None, **extra: Any,
    ) -> RunHandle:
        thread = thread_id if thread_id is not None else own_thread or uuid.uuid4().hex
        run_id = run_id or protocol.new_run_id(thread)
        await self.store.create_run(
            run_id, graph_name, thread_id=thread, keep=thread_id is not None, kind=kind,
            input=input, config=config or {}, context=context, waiter=self.ends.waiter,
            trace=traces.run_trace(graph_name, run_id), **extra,
        )
        return RunHandle(self.store, run_id, graph_name, watch=self.ends)

    def handle(self, run_id: str, graph: str = "") -> RunHandle:
        return RunHandle(self.store, run_id, graph)

    # -- threads -------------------------------------------------------------------------------

    async def get_state(self, config: Mapping[str, Any], subgraphs: bool = False) -> StateSnapshot:
        """The thread's latest checkpoint (or the one `checkpoint_id` names), as LangGraph's
        `get_state` shows it: the latest stopped step shows its finished tasks' writes applied
        and only its unfinished tasks. A task that runs a subgraph shows the subgraph's
        thread (its config), or with `subgraphs` its state."""
        thread_id, checkpoint_id = require_thread(config)
        tag = protocol.thread_tag(thread_id)
        latest = await self.store.threads.latest_checkpoint(tag)
        saved = latest
        if checkpoint_id:
            saved = await self.store.threads.named_checkpoint(tag, checkpoint_id)
        if saved is None:
            return StateSnapshot({}, (), dict(config), None, None, None, ())
        # The thread's state now: a stopped step shows what is left of it. A checkpoint named
        # by id, the latest too, shows the record of its step, as LangGraph's: every task in
        # it and every question asked, answered ones included.
        is_latest = latest is not None and saved.id == latest.id and not checkpoint_id
        return await self._snapshot(thread_id, saved, pending_applied=is_latest,
                                    subgraphs=subgraphs,
                                    moved_on=latest is not None and saved.id != latest.id)

    async def get_state_history(
        self, config: Mapping[str, Any], *, filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None, limit: int | None = None,
    ) -> list[StateSnapshot]:
        """The thread's checkpoints, newest first: those older than `before`'s checkpoint, whose
        metadata has the items of `filter`, at most `limit` of them. A config naming a
        checkpoint lists that one alone, as LangGraph's savers filter by it."""
        thread_id, named = require_thread(config)
        saved = await self.store.threads.history(protocol.thread_tag(thread_id))
        latest = saved[0].id if saved else None
        if named:
            saved = [s for s in saved if s.id == named]
        if before is not None:
            _, older_than = _thread_of(before)
            ids = [s.id for s in saved]
            saved = saved[ids.index(older_than) + 1:] if older_than in ids else []
        snapshots: list[StateSnapshot] = []
        for s in saved:
            if limit is not None and len(snapshots) >= limit:
                break
            snapshot = await self._snapshot(thread_id, s, pending_applied=False,
                                            moved_on=s.id != latest)
            if all((snapshot.metadata or {}).get(k) == v for k, v in (filter or {}).items()):
                snapshots.append(snapshot)
        return snapshots

    async def update_state(
        self, graph_name: str, config: Mapping[str, Any], values: Any, as_node: str | None = None
    ) -> dict[str, Any]:
        """Write `values` to the thread as if node `as_node` (by default the node that wrote
        last) had returned them; returns the config of the new checkpoint."""
        return await self.bulk_update_state(graph_name, config, [[(values, as_node)]])

    async def bulk_update_state(
        self, graph_name: str, config: Mapping[str, Any],
        supersteps: Sequence[Sequence[tuple[Any, str | None] | Sequence[Any]]],
    ) -> dict[str, Any]:
        """Apply supersteps of updates in turn, each a checkpoint: its updates (values,
        as_node), LangGraph's `StateUpdate`s, written together as if those nodes had returned
        them in one step. `as_node="__input__"` writes values as a run's input, `"__copy__"`
        (no values) copies the checkpoint, None as END drops a stopped step's tasks. Returns
        the config of the last checkpoint."""
        if not supersteps:
            raise ValueError("No supersteps provided")
        if any(len(updates) == 0 for updates in supersteps):
            raise ValueError("No updates provided")
        await self._check_graph(graph_name)
        thread_id, checkpoint_id = require_thread(config)
        steps: list[Sequence[Any]] = []
        for updates in supersteps:  # a copy may carry the updates of the superstep after it
            steps.append(updates)
            values = updates[0][0]
            if updates[0][1] == COPY_NODE and isinstance(values, list) and values:
                steps.append(values)
        for updates in steps:
            handle = await self._create(
                graph_name, thread_id, "update", [[u[0], u[1] if len(u) > 1 else None]
                                                  for u in updates],
                config, None, from_checkpoint=checkpoint_id)
            end = await handle.end()
            run_events.raise_unless_done(end)
            checkpoint_id = end["checkpoint_id"]
        namespace = protocol.split_thread(thread_id)[1]
        return replay.snapshot_config(
            thread_id, checkpoint_id, replay.ancestors(replay.checkpoint_map(config), namespace))

    async def delete_thread(self, thread_id: str) -> None:
        """Forget a thread: its checkpoints and pending writes."""
        await self.store.threads.delete(thread_id)

    async def _snapshot(
        self, thread_id: str, saved: SavedCheckpoint, *, pending_applied: bool,
        subgraphs: bool = False, moved_on: bool = False,
    ) -> StateSnapshot:
        """`moved_on`: a later checkpoint follows it. The outcomes that a run with
        durability="exit" posted there and then moved on from are left out, as LangGraph,
        saving nothing until such a run exits, never records them. So are those of such a run
        that ended well: a subgraph's, which saves nothing at its end."""
        cp = saved.checkpoint
        tasks = cp.tasks
        outcomes, priors, children = await self.store.threads.task_records(
            protocol.thread_tag(thread_id), saved.id)
        unsaved = {o.posted_by for o in outcomes.values()
                   if o.posted_by not in ("", saved.run_id)}
        if not moved_on:
            unsaved = {run for run in unsaved if await self.store.status(run) == "done"}
        values, left = dict(cp.values), [t.id for t in tasks]
        if pending_applied and saved.view_values is not None:
            values, left = dict(saved.view_values), list(saved.view_next or [])
        shown = []
        for t in tasks:
            o = outcomes.get(t.id)
            if o is not None and o.posted_by in unsaved:
                o = None
            if o is None and t.node == START:  # the input, applied without a worker
                o = TaskOutcome(t.id, t.node, writes=t.arg)
            path = ("__pregel_pull", t.node) if t.send_index is None else (
                "__pregel_push", t.send_index, False)  # (False: not a call, as LangGraph's)
            # in the history, a task run again after failing or interrupting shows that too
            earlier = [] if pending_applied else list(priors.get(t.id, []))
            earlier += [o] if o else []
            error = next((p.node_error or p.error for p in reversed(earlier)
                          if p.node_error or p.error), None)
            asked = next((p.interrupts for p in reversed(earlier) if p.interrupts), ())
            state: Any = None
            if t.id in children:  # the subgraph it ran (its first, when it ran several)
                user_thread, _ = protocol.split_thread(thread_id)
                state = {"configurable": {"thread_id": user_thread,
                                          "checkpoint_ns": children[t.id][0]}}
                if subgraphs:
                    state = await self.get_state(state, subgraphs=True)
            shown.append(PregelTask(
                id=t.id, name=t.node, path=path,
                error=repr(error.rebuild()) if error else None,  # type: ignore[arg-type]
                interrupts=asked_of(asked), state=state,
                result=shown_writes(o.writes) if o and o.succeeded and not o.handled else None,
            ))
        return StateSnapshot(
            values=values,
            next=tuple(t.node for t in tasks if t.id in left),
            config=replay.snapshot_config(thread_id, saved.id, saved.parents),
            metadata={"source": saved.source, "step": cp.step, "parents": dict(saved.parents)},
            created_at=saved.created_at,
            parent_config=replay.snapshot_config(thread_id, saved.parent, saved.parents)
            if saved.parent else None,
            tasks=tuple(shown),
            interrupts=tuple(
                i for task in shown if not pending_applied or task.id in left
                for i in task.interrupts
            ),
        )


def run_thread(key: str, thread_id: str | None) -> str:
    """The thread a run submitted with `run_id=key` runs on: `thread_id`, or one of its own."""
    return thread_id if thread_id is not None else f"run:{key}"


def run_id_for(key: str, thread_id: str | None) -> str:
    """The id of the run `submit(..., run_id=key)` makes on `thread_id` (None: on a thread of
    its own), known before it is submitted."""
    return protocol.keyed_run_id(run_thread(key, thread_id), key)


def _thread_of(config: Mapping[str, Any] | None) -> tuple[str | None, str]:
    """The thread a config names (a subgraph's, with a `checkpoint_ns`) and its checkpoint id."""
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    thread = None if thread_id is None else protocol.child_thread(
        str(thread_id), str(configurable.get("checkpoint_ns") or ""))
    return thread, str(configurable.get("checkpoint_id") or "")


def with_metadata(config: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The config with the configurable keys LangGraph copies into a run's metadata at its
    start, those the metadata does not have yet (its nodes' metadata shows them)."""
    configurable = (config or {}).get("configurable") or {}
    shown = {k: v for k in PROPAGATED_TO_METADATA if (v := configurable.get(k))}
    if config is None or not shown:
        return config
    return {**config, "metadata": {**shown, **(config.get("metadata") or {})}}


def require_thread(config: Mapping[str, Any] | None) -> tuple[str, str]:
    """The config's thread id and checkpoint id; LangGraph's ValueError when it names no thread."""
    thread_id, checkpoint_id = _thread_of(config)
    if thread_id is None:
        raise ValueError(
            "Checkpointer requires one or more of the following 'configurable' keys: "
            "thread_id, checkpoint_ns, checkpoint_id"
        )
    return thread_id, checkpoint_id


class SyncClient:
    """`Client` for code without an event loop: runs one in a background thread."""

    def __init__(self, url: str, *, ready_timeout: float = READY_TIMEOUT,
                 connect_timeout: float | None = CONNECT_TIMEOUT) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            self._client: Client = self._call(Client.connect(
                url, ready_timeout=ready_timeout, connect_timeout=connect_timeout))
        except BaseException:  # (an unreachable Redis: leave no loop thread behind)
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def submit(self, graph_name: str, input: Any, config: Mapping[str, Any] | None = None,
               *, context: Any = None) -> SyncRunHandle:
        handle = self._call(self._client.submit(graph_name, input, config, context=context))
        return SyncRunHandle(self, handle)

    def get_state(self, config: Mapping[str, Any]) -> StateSnapshot:
        return self._call(self._client.get_state(config))  # type: ignore[no-any-return]

    def get_state_history(self, config: Mapping[str, Any]) -> list[StateSnapshot]:
        return self._call(self._client.get_state_history(config))  # type: ignore[no-any-return]

    def update_state(self, graph_name: str, config: Mapping[str, Any], values: Any,
                     as_node: str | None = None) -> dict[str, Any]:
        return self._call(  # type: ignore[no-any-return]
            self._client.update_state(graph_name, config, values, as_node))

    def bulk_update_state(self, graph_name: str, config: Mapping[str, Any],
                          supersteps: Sequence[Sequence[Any]]) -> dict[str, Any]:
        return self._call(  # type: ignore[no-any-return]
            self._client.bulk_update_state(graph_name, config, supersteps))

    def delete_thread(self, thread_id: str) -> None:
        self._call(self._client.delete_thread(thread_id))

    def close(self) -> None:
        self._call(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


class SyncRunHandle:
    def __init__(self, client: SyncClient, handle: RunHandle) -> None:
        self._client = client
        self.handle = handle
        self.run_id = handle.run_id

    def result(self) -> Any:
        return self._client._call(self.handle.result())

    def status(self) -> str:
        return str(self._client._call(self.handle.status()))

    def cancel(self) -> None:
        self._client._call(self.handle.cancel())

    def stream(self, mode: str | Sequence[str] = "values") -> Iterator[Any]:
        agen = self.handle.stream(mode)
        while True:
            try:
                yield self._client._call(agen.__anext__())
            except StopAsyncIteration:
                return
