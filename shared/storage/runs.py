"""The Redis operations every arqgraph process shares, over the keys of `arqgraph.protocol`.

This is the only module that talks to Redis about runs (the queue of their jobs is
`arqgraph.storage.queue`'s); the orchestrator, the workers and the producer client each call the few
operations they need.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from arq.connections import ArqRedis
from redis.exceptions import OutOfMemoryError

from arqgraph import observe, protocol
from arqgraph.core import codec
from arqgraph.core.pregel import TaskOutcome
from arqgraph.errors import CorruptDataError, ErrorInfo, ThreadBusyError, UpdateTooLargeError
from arqgraph.protocol import EventMode, GraphInfo, InboxNote, RunRecord, SavedCheckpoint
from arqgraph.storage import blobs, history
from arqgraph.storage.batch import Batch
from arqgraph.storage.cache import RunCache
from arqgraph.storage.commits import Commit, retire_call
from arqgraph.storage.dead_letters import readable_ids, set_aside
from arqgraph.storage.events import Events
from arqgraph.storage.limits import NodeLimits
from arqgraph.storage.memory import RedisMemory
from arqgraph.storage.posts import pack_posts
from arqgraph.storage.queue import JobQueue, ScriptCall, TakenJob
from arqgraph.storage.task_calls import TaskCalls
from arqgraph.storage.threads import ThreadStore

log = logging.getLogger("arqgraph.store")

NO_RESUME: Any = object()  # a run that does not resume interrupts


@dataclass(frozen=True)
class Claim:
    """One attempt at a task: `attempt` fences it, `lost` counts earlier starts that never
    ended (their worker died), `failures` earlier tries that raised; `resume` holds the values
    the task's interrupts resume with."""

    attempt: int
    lost: int
    failures: int
    resume: tuple[Any, ...] = ()


ROOM_CHECK_BYTES = 1024 * 1024  # updates larger than this are checked against maxmemory


class Posted(NamedTuple):
    """What the post of an outcome did (`RunStore.post_outcome`): its `code`, and the job of
    the next step that it took for the posting worker to run next, with its task's claim."""

    code: int
    next_job: TakenJob | None = None
    next_claim: Claim | None = None


class RedisFullError(UpdateTooLargeError):
    """Redis is over its maxmemory and refuses writes; posting is retried until it has room."""


class RunStore:
    """Runs, their checkpoints and outcomes in one Redis; with their events, the task calls
    of the Functional API, the nodes' limits and the threads' histories (`events`, `calls`,
    `limits`, `threads`)."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis
        self.cache = RunCache()
        self._loading: dict[str, asyncio.Future[Any]] = {}  # run id -> its load in flight
        self._batch = Batch(redis)  # the calls of concurrent tasks: one round trip
        self.events = Events(redis, self._batch)
        self.calls = TaskCalls(redis, self._batch)
        self.limits = NodeLimits(redis, self._batch)
        self.threads = ThreadStore(redis, self._batch)
        self.memory = RedisMemory(redis)  # (the maxmemory guard of large updates)
        self._commit = self._batch.script(protocol.COMMIT_SCRIPT)
        self._create = self._batch.script(protocol.CREATE_RUN_SCRIPT)
        self._load = self._batch.script(protocol.LOAD_RUN_SCRIPT)
        self._post = self._batch.script(protocol.POST_OUTCOME_SCRIPT)
        # the posts that come together without a commit (a fan-out's): one script call
        self._posts = self._batch.gathered(protocol.POST_OUTCOMES_SCRIPT,
                                           protocol.POST_OUTCOME_SCRIPT, pack_posts)
        self._claim = self._batch.script(protocol.CLAIM_SCRIPT)
        self._end_attempt = self._batch.script(protocol.END_ATTEMPT_SCRIPT)
        self._retire = self._batch.script(protocol.RETIRE_SCRIPT)

    # -- graphs ------------------------------------------------------------------------------

    async def register_graph(self, info: GraphInfo) -> None:
        await self.redis.hset(protocol.GRAPHS_KEY, info.name, protocol.encode_info(info))  # type: ignore[arg-type]

    async def graphs_registered(self, infos: Sequence[GraphInfo]) -> bool:
        """Whether each of these registrations is in place as it is (one read for all)."""
        if not infos:
            return True
        found = await self.redis.hmget(protocol.GRAPHS_KEY, [i.name for i in infos])  # type: ignore[misc]
        return all(raw == protocol.encode_info(info) for raw, info in zip(found, infos, strict=True))

    async def graph_info(self, name: str) -> GraphInfo | None:
        """The graph's registration; an unreadable one is set aside (its orchestrators register
        the graph again at their next sweep) and raises CorruptDataError."""
        raw = await self._batch.command("HGET", protocol.GRAPHS_KEY, name)
        try:
            return protocol.decode_info(raw) if raw else None
        except Exception as exc:
            why = f"the registration of graph {name!r} is unreadable: {exc}"
            if await self.redis.hdel(protocol.GRAPHS_KEY, name):  # type: ignore[misc]
                await set_aside(self.redis, protocol.GRAPHS_KEY, why, raw)
            raise CorruptDataError(f"{why}; its orchestrators register it again within their "
                                   "sweep interval") from None

    async def graph_names(self) -> list[str]:
        return sorted(k.decode(errors="backslashreplace")
                      for k in await self.redis.hkeys(protocol.GRAPHS_KEY))

    # -- runs --------------------------------------------------------------------------------

    async def create_run(
        self, run_id: str, graph: str, *, thread_id: str, keep: bool, kind: str, input: Any,
        config: Mapping[str, Any], context: Any, resume: Any = NO_RESUME,
        from_checkpoint: str = "", waiter: str = "", modes: Sequence[str] = (), trace: str = "",
    ) -> None:
        """Record a run and tell the graph's orchestrators (nothing when it exists already);
        raises ThreadBusyError when its thread has another unfinished run."""
        fields: dict[str, Any] = {
            "graph": graph, "status": "pending", "version": "0", "thread_id": thread_id,
            "keep": "1" if keep else "0", "kind": kind, "input": codec.packb(input),
            "config": codec.pack_values(config, where="config"), "context": codec.packb(context),
            "from_checkpoint": from_checkpoint, "created": str(time.time()),
        }
        if resume is not NO_RESUME:
            fields["resume"] = codec.packb(resume)
        if waiter:
            fields["waiter"] = waiter
        if modes:
            fields["modes"] = ",".join(modes)
        if trace:
            fields["trace"] = trace
        tag = protocol.tag_of(run_id)
        note = protocol.encode_note(InboxNote(kind="submit", run_id=run_id))
        args: list[Any] = [run_id, thread_id, "1" if keep else "0", note]
        for name, value in fields.items():
            args += [name, value]
        busy = await self._create(keys=[protocol.thread_key(tag), protocol.run_key(run_id),
                                        protocol.active_key(graph), protocol.inbox_key(graph)],
                                  args=args)
        if busy and busy != run_id.encode():  # (its own id: a retried submit, nothing to do)
            raise ThreadBusyError(
                f"thread {thread_id!r} is busy with run {busy.decode()}; wait for it to finish "
                "(or cancel it) before starting another run on the thread"
            )

    async def load_run(self, run_id: str) -> RunRecord | None:
        """A run with its current checkpoint, from this process's cache where it can (see
        `arqgraph.storage.cache`); tasks of a step that start together wait for the first one's load,
        then load the run without its checkpoint (those that start once it is here need not
        wait)."""
        return (await self._load_run(run_id))[0]

    async def load_step(
        self, run_id: str
    ) -> tuple[RunRecord | None, dict[str, TaskOutcome] | None]:
        """`load_run`, and, when the run is still on the step this process last saw it on
        (the orchestrator: the step it committed), the outcomes of that step's tasks, read in
        the same round trip; None when they are still to be read."""
        record, _, outcomes = await self._load_run(run_id, outcomes=True)
        return record, outcomes

    async def start_task(
        self, run_id: str, checkpoint_id: str, task_id: str
    ) -> tuple[RunRecord | None, Claim | None | Literal[False]]:
        """`load_run` and `claim_task` in one round trip: the run, and the task's new attempt
        (None when the task already has an outcome), or False when it was not claimed because
        the run is not running that step, or is being cancelled."""
        record, claim, _ = await self._load_run(run_id, (checkpoint_id, task_id))
        return record, claim

    async def _load_run(
        self, run_id: str, task: tuple[str, str] | None = None, outcomes: bool = False
    ) -> tuple[RunRecord | None, Claim | None | Literal[False], dict[str, TaskOutcome] | None]:
        earlier = self._loading.get(run_id)
        if earlier is not None and not (task is not None and self.cache.has_checkpoint(task[0])):
            await asyncio.wait([earlier])  # (unless the task's checkpoint is here: a small load)
        loading = asyncio.ensure_future(self._fetch_run(run_id, task, outcomes))
        self._loading[run_id] = loading
        try:
            return await loading
        finally:
            if self._loading.get(run_id) is loading:
                del self._loading[run_id]

    async def _fetch_run(
        self, run_id: str, task: tuple[str, str] | None, with_outcomes: bool
    ) -> tuple[RunRecord | None, Claim | None | Literal[False], dict[str, TaskOutcome] | None]:
        call, known, task_ids = self._load_call(run_id, task, with_outcomes)
        reply = await self._load(call.keys, call.args)
        return await self._read_load(run_id, reply, known, task_ids)

    def start_call(
        self, run_id: str, checkpoint_id: str, task_id: str
    ) -> tuple[ScriptCall, RunRecord | None]:
        """`start_task`'s script call, to be made inside another script (the take of the task's
        job, see JobQueue.take; task_id '' to load the run only), and the record of the run it
        expects; `read_start` reads its reply."""
        call, known, _ = self._load_call(run_id, (checkpoint_id, task_id), False)
        return call, known

    async def read_start(
        self, run_id: str, reply: Any, known: RunRecord | None
    ) -> tuple[RunRecord | None, Claim | None | Literal[False]]:
        """`start_task`'s result from the reply of a `start_call` (0 when the run is gone)."""
        record, claim, _ = await self._read_load(run_id, reply or None, known, [])
        return record, claim

    def _load_call(
        self, run_id: str, task: tuple[str, str] | None, with_outcomes: bool
    ) -> tuple[ScriptCall, RunRecord | None, list[str]]:
        """LOAD_RUN_SCRIPT's call, with the record of the run this process has (its fields are
        not sent again) and the ids of the tasks whose outcomes it reads."""
        tag = protocol.tag_of(run_id)
        keys = [protocol.run_key(run_id), protocol.checkpoints_key(tag)]
        args: list[str] = ["", ""]
        if task is not None:
            keys += [protocol.claims_key(tag, task[0]), protocol.writes_key(tag, task[0])]
            args = list(task)
        known = self.cache.run(run_id)
        args.append(str(known.version) if known is not None else "")
        task_ids: list[str] = []
        if known is not None and self.cache.has_checkpoint(known.checkpoint_id):
            cid = known.checkpoint_id  # (the checkpoint the run is likely still on)
            args.append(cid)
            if with_outcomes and known.status == "running" and known.saved is not None:
                task_ids = [t.id for t in known.saved.checkpoint.tasks]
                keys += [protocol.claims_key(tag, cid), protocol.writes_key(tag, cid)]
                args += task_ids
        else:
            args.append("")
        return ScriptCall(keys, args), known, task_ids

    async def _read_load(
        self, run_id: str, reply: Any, known: RunRecord | None, task_ids: Sequence[str]
    ) -> tuple[RunRecord | None, Claim | None | Literal[False], dict[str, TaskOutcome] | None]:
        """A load's reply (see LOAD_RUN_SCRIPT) as the run's record, the task's claim and the
        outcomes asked for; what it decoded is kept in this process's cache."""
        if not reply:
            self.cache.forget_run(run_id)
            return None, False, None
        tag = protocol.tag_of(run_id)
        flat, blob, claimed, got = (list(reply) + [None, None, None])[:4]
        claim: Claim | None | Literal[False] = _claim_of(claimed) if claimed else False
        outcomes = None
        if task_ids and got is not None:
            outcomes = await blobs.resolved_outcomes(self.redis, tag, _outcomes_of(task_ids, got))
        if not flat and known is not None:  # unchanged since this process last read it
            return known, claim, outcomes
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        cid = fields.get(b"checkpoint_id", b"").decode()
        saved: SavedCheckpoint | None = None
        if blob:
            try:
                saved = protocol.decode_saved(blob)
            except Exception:  # garbled: the run fails with it (see decode_run)
                record = protocol.decode_run(run_id, fields, blob)
                return record, claim, outcomes
            size = len(blob)
            if ids := protocol.saved_refs(saved):  # (its large values: read once, kept with it)
                got = await blobs.fetch(self.redis, tag, ids)
                try:
                    saved = protocol.with_blobs(saved, got)
                except Exception as exc:  # gone or garbled: the run fails with it
                    record = protocol.decode_run(run_id, fields, None)
                    return record.model_copy(update={"unreadable": f"its checkpoint: {exc}"}
                                             ), claim, outcomes
                size += sum(len(b or b"") for b in got.values())
            self.cache.keep_checkpoint(saved, size)
        elif cid:
            saved = self.cache.checkpoint(cid)
            if saved is None:  # evicted between the call and now: read it
                saved = await self.threads.saved_checkpoint(tag, cid)
        record = protocol.decode_run(run_id, fields, saved)
        if not record.cancel_requested and not record.drain:  # (read in full each time then)
            self.cache.keep_run(record)
        return record, claim, outcomes

    def remember_run(self, record: RunRecord) -> RunRecord:
        """Keep `record` as this version of its run: a later load of the run finding the same
        version (and no cancel) uses it instead of reading the run's fields back. The
        orchestrator gives it the records it has just committed."""
        return self.cache.keep_run(record)

    async def status(self, run_id: str) -> str | None:
        raw = await self._batch.command("HGET", protocol.run_key(run_id), "status")
        return raw.decode(errors="backslashreplace") if raw else None  # (garbled: not final)

    async def commit(self, commit: Commit) -> bool:
        """Make a commit (`arqgraph.storage.commits.commit_call`): False when the run moved since its
        record was read (or, unless the commit ends it, a cancel was asked for)."""
        tag = protocol.tag_of(commit.run_id)
        await blobs.put(self.redis, tag, commit.blobs, commit.run_id, commit.event_refs)
        began = time.perf_counter()
        done = bool(await self._commit(keys=commit.call.keys, args=commit.call.args))
        if done:
            self.committed(commit, began)
            await self._collect(commit)
        else:  # (the run moved, or came back to its version on another checkpoint: read it)
            self.cache.forget_run(commit.run_id)
        return done

    async def _collect(self, commit: Commit) -> None:
        """After a commit that ended a run that prunes its thread's history: delete what the
        pruned checkpoints left (see `arqgraph.storage.history`). Its failure fails nothing:
        the thread's next run's end collects it."""
        if commit.ends is None or not commit.prunes:
            return
        try:
            await history.collect(self.redis, self.threads, protocol.tag_of(commit.run_id))
        except Exception as exc:
            log.warning("run %s: could not collect its thread's pruned values: %r",
                        commit.run_id, exc)

    def committed(self, commit: Commit, began: float) -> None:
        """A commit was made (its round trip `began` at that `time.perf_counter()`): the next
        load need not fetch its checkpoint back; the observers hear of it."""
        if commit.saved is not None:
            self.cache.keep_checkpoint(commit.saved, commit.size)
        hooks = observe.current()
        hooks.committed(time.perf_counter() - began, commit.ends is None and commit.saved is not None)
        if commit.ends is not None:
            graph, status, created = commit.ends
            hooks.run_ended(graph, status, None if created is None else time.time() - created)

    async def retire(self, record: RunRecord, seconds: int) -> None:
        """A run that ended but is still active: its keys expire in `seconds` (its thread's
        too, unless the thread is kept until deleted), the client awaiting it is told, and it
        leaves the active set. The commit that ends a run does this too, in the same script;
        this is for runs that ended before it did (by an earlier version, during an upgrade).
        """
        call = retire_call(record, seconds)
        await self._retire(keys=call.keys, args=call.args)

    async def is_active(self, record: RunRecord) -> bool:
        """Whether the run is still listed among its graph's unfinished runs."""
        return bool(await self.redis.sismember(protocol.active_key(record.graph), record.run_id))

    async def request_cancel(self, run_id: str) -> RunRecord | None:
        record = await self.load_run(run_id)
        if record is None:
            return None
        await self.stop_nodes(run_id)
        await self.events.notify(record.graph, InboxNote(kind="cancel", run_id=run_id))
        return record

    async def request_drain(self, run_id: str, reason: str) -> None:
        """Ask the run to stop once its running step is done (its checkpoint saved): no later
        step starts, and the run ends drained, to be resumed later."""
        record = await self.load_run(run_id)
        if record is None or record.status in protocol.FINAL_STATUSES:
            return
        await self.redis.hsetnx(protocol.run_key(run_id), "drain", reason or "shutdown")
        await self.events.notify(record.graph, InboxNote(kind="drain", run_id=run_id))

    async def stop_nodes(self, run_id: str) -> None:
        """Cancel the run's running nodes, wherever they run: workers renewing their leases
        read the flag, and hear it at once on the cancel channel. The runs of the subgraphs
        its tasks run are cancelled too."""
        await self.redis.hset(protocol.run_key(run_id), "cancel", "1")
        await self.redis.publish(protocol.CANCEL_CHANNEL, run_id)
        for child in await self.events.children(run_id):
            if await self.status(child) not in (None, *protocol.FINAL_STATUSES):
                await self.request_cancel(child)

    async def any_active(self, graphs: Sequence[str]) -> bool:
        """Whether any of these graphs has an unfinished run (one command for all)."""
        keys = [protocol.active_key(g) for g in graphs]
        return bool(keys) and bool(await self.redis.sunion(keys))  # type: ignore[misc]

    async def active_runs(self, graph: str) -> list[str]:
        """The graph's unfinished runs; an id that is not a run id is set aside."""
        key = protocol.active_key(graph)
        return await readable_ids(self.redis, await self.redis.smembers(key), key)

    # -- tasks -------------------------------------------------------------------------------

    async def outcomes(
        self, tag: str, checkpoint_id: str, task_ids: Sequence[str]
    ) -> dict[str, TaskOutcome]:
        if not task_ids:
            return {}
        raw = await self._batch.command("HMGET", protocol.writes_key(tag, checkpoint_id), *task_ids)
        return await blobs.resolved_outcomes(self.redis, tag, _outcomes_of(task_ids, raw))

    async def claim_task(self, tag: str, checkpoint_id: str, task_id: str) -> Claim | None:
        """Start a new attempt at a task; None when the task already has an outcome."""
        keys = [protocol.claims_key(tag, checkpoint_id), protocol.writes_key(tag, checkpoint_id)]
        return _claim_of(await self._claim(keys=keys, args=[task_id]))

    async def end_attempt(
        self, tag: str, checkpoint_id: str, task_id: str, claim: Claim, *, failed: bool
    ) -> None:
        """An attempt ends without an outcome: handed back (a deploy) or failed, to be retried."""
        keys = [protocol.claims_key(tag, checkpoint_id)]
        await self._end_attempt(keys=keys, args=[task_id, claim.attempt, int(failed)])

    async def post_outcome(
        self, graph: str, run_id: str, checkpoint_id: str, outcome: TaskOutcome,
        events: Sequence[tuple[EventMode, Any]] = (), claim: Claim | None = None,
        max_bytes: int = protocol.MAX_UPDATE_BYTES, job_end: ScriptCall | None = None,
        move: Commit | None = None, hold: ScriptCall | None = None,
        ran: tuple[str, float, float] | None = None, sole: bool = False,
    ) -> Posted:
        """Record a task's outcome unless one is already there (the first wins), then notify.

        With a `claim`, only the attempt that owns the task may post: 1 recorded and the step
        has all its outcomes, or the outcome is a failure (the orchestrator is told), 3 so and
        the `move` made (the commit of the run's next step, or of its end: the orchestrator is
        not told; none is made once a cancel was asked for), 2 recorded and others are due,
        0 the task was already done, -1 this attempt is stale (it lost its lease and the task
        was restarted). `job_end` (JobQueue.finish_call) ends the task's arq job too, when the
        outcome is recorded: arq then need not. `hold` (JobQueue.hold_call) takes the job the
        move enqueues and kept off the ready list (`JobQueue.single_enqueue`), when it is made.
        `ran`: the worker, when the node began and how long it took, kept with the outcome.
        `sole`: the task is its step's only one (its outcome completes the step, uncounted).
        """
        attempt = "" if claim is None else str(claim.attempt)
        kept: dict[str, bytes] = dict(move.blobs) if move else {}
        data = protocol.encode_outcome(outcome, max_bytes, ran, kept)
        size = len(data) + sum(len(b) for b in kept.values())
        if size > ROOM_CHECK_BYTES:
            await self.memory.check_room(outcome, size)
        note = protocol.task_done_note(run_id)
        hold = hold if move else None
        args: list[Any] = [outcome.task_id, data, attempt, note, len(events),
                           "1" if job_end else "", "1" if move else "", "1" if hold else "",
                           "1" if outcome.error is not None else "", "1" if sole else ""]
        event_blobs: dict[str, bytes] = {}
        args += protocol.event_args(events, event_blobs)
        kept.update(event_blobs)
        event_refs = set(event_blobs) | (move.event_refs if move else set())
        tag = protocol.tag_of(run_id)
        keys = [protocol.writes_key(tag, checkpoint_id), protocol.events_key(run_id),
                protocol.claims_key(tag, checkpoint_id), protocol.inbox_key(graph)]
        for call in (job_end, hold, move and move.call):
            if call:
                keys += call.keys
                args += call.args
        began = time.perf_counter()
        try:
            await blobs.put(self.redis, tag, kept, run_id, event_refs)
            reply = await (self._post if move else self._posts)(keys=keys, args=args)
        except OutOfMemoryError as exc:
            raise RedisFullError(
                f"Redis is out of memory (maxmemory) and refused the update of node "
                f"{outcome.node!r} ({protocol.describe_sizes(outcome)}): {exc}"
            ) from None
        if not isinstance(reply, list):
            posted = Posted(int(reply))
        else:  # 3, and the job held
            assert hold is not None
            job = JobQueue.held(hold, reply[1:])
            posted = Posted(int(reply[0]), job, _claim_of(job.started))
        if posted.code == 3 and move is not None:
            self.committed(move, began)
            await self._collect(move)
        elif move is not None:
            self.cache.forget_run(run_id)
        return posted



def _claim_of(reply: list[Any]) -> Claim | None:
    """A claim script's reply (see CLAIM_SCRIPT): the attempt, or None when the task is done."""
    if not reply[0]:
        return None
    resume = protocol.decode_resume(reply[3]) if len(reply) > 3 else ()
    return Claim(int(reply[0]), int(reply[1]), int(reply[2]), resume)


def _outcomes_of(task_ids: Sequence[str], blobs: Sequence[bytes | None]) -> dict[str, TaskOutcome]:
    """The outcomes of a step's tasks, from their blobs (None for a task without one)."""
    return {tid: _outcome_of(tid, b) for tid, b in zip(task_ids, blobs, strict=True) if b}


def _outcome_of(task_id: str, blob: bytes) -> TaskOutcome:
    """A task's outcome; a garbled one fails the task, and so its run (read once: the run ends)."""
    try:
        return protocol.decode_outcome(blob)
    except Exception as exc:
        error = CorruptDataError(f"the outcome of task {task_id} is garbled: {exc!r}")
        log.error("%s", error)
        return TaskOutcome(task_id, "", error=ErrorInfo.of(error, ""))
