"""Leases: a worker holds its running jobs with short, renewed TTLs, from a thread of its own.

arq marks a started job with an in-progress key that lives for the job timeout + 10 s, so a
killed worker's job would wait that long to run again. Here the key lives for `lease` seconds and
is renewed every third of it while the job runs; the same loop cancels the running nodes of
cancelled runs as soon as a cancel is published. With nothing to renew, the keeper waits as long
as an idle worker does (an idle pool should cost next to nothing); the worker wakes it with a
message on its own channel as it starts a job (`LeaseKeeper.busy`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import TYPE_CHECKING

from arq.utils import timestamp_ms
from redis.asyncio import Redis

from arqgraph import protocol
from arqgraph.storage.connection import thread_client
from arqgraph.workers.call_events import made_call
from arqgraph.workers.calls import is_call

if TYPE_CHECKING:
    from arqgraph.workers.worker import GraphWorker

log = logging.getLogger("arqgraph.worker")


class LeaseKeeper:
    """Keeps a worker's jobs leased, and cancels nodes of cancelled runs, from a thread.

    The renewal runs on its own thread, event loop and connection, so a node that blocks the
    worker's loop does not lose its lease (and is not started a second time elsewhere).
    """

    def __init__(self, worker: GraphWorker, lease: float) -> None:
        self.worker = worker
        self.lease = lease
        self.loop = asyncio.get_running_loop()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._main, name="arqgraph-lease", daemon=True)
        self.wake_channel = protocol.lease_wake_channel(uuid.uuid4().hex)
        # Set by the keeper before it reads what to renew, cleared once it found something or
        # by `busy`: whichever comes second of a job's start and that read sees the other.
        self.idle = False
        self._waking: set[asyncio.Task[None]] = set()

        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if getattr(self.worker.pool, "for_another_loop", None) is not None:
            # the in-memory store of the embedded default: no other process can take a job
            # whose lease lapsed (its leases are long), so no thread need outlive a blocked loop
            self.task = self.loop.create_task(self._renew_forever())
        else:
            self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.task is not None:
            self.task.cancel()

    def busy(self) -> None:
        """The worker started a job: a keeper in its idle wait wakes to renew the job's lease
        within the lease (one message, only on the way from idle to busy)."""
        if self.idle:
            self.idle = False
            task = self.loop.create_task(self._wake())
            self._waking.add(task)
            task.add_done_callback(self._waking.discard)

    async def _wake(self) -> None:
        try:
            await self.worker.pool.publish(self.wake_channel, b"")
        except Exception as exc:  # (Redis away: the job's lease waits for the keeper's retry)
            log.warning("could not wake the lease keeper: %s", exc)

    def _main(self) -> None:
        asyncio.run(self._renew_forever())

    async def _renew_forever(self) -> None:
        redis = thread_client(self.worker.pool)  # (its own connections, for this loop)
        cancels = redis.pubsub()
        listening = False
        try:
            while not self.stopped.is_set():
                try:
                    if not listening:
                        await cancels.subscribe(protocol.CANCEL_CHANNEL, self.wake_channel)
                        listening = True
                    self.idle = True  # (before the read of what to renew: see `busy`)
                    if await self.tick(redis):
                        self.idle = False
                    # until the next renewal, or at once when a run is cancelled or a job starts
                    wait = protocol.IDLE_HEARTBEAT_INTERVAL if self.idle else self.lease / 3
                    told = await cancels.get_message(ignore_subscribe_messages=True, timeout=wait)
                    if (told and told.get("channel") == protocol.CANCEL_CHANNEL.encode()
                            and isinstance(told.get("data"), bytes)):  # (also a job about to run)
                        run_id = told["data"].decode(errors="replace")
                        self.loop.call_soon_threadsafe(self.worker.runner.cancel_runs, {run_id})
                except Exception as exc:  # Redis away: keep trying; leases outlive short outages
                    log.warning("lease renewal failed: %s", exc)
                    listening = self.idle = False
                    await asyncio.to_thread(self.stopped.wait, self.lease / 3)
        finally:
            await cancels.aclose()
            await redis.aclose()

    async def tick(self, redis: Redis) -> bool:
        """Renew what the worker holds; False when it holds nothing."""
        jobs = list(self.worker.tasks)
        runs = sorted({protocol.run_of_job(j) for j in self.worker.runner.running})
        calls = [(job, task) for job in self.worker.runner.running
                 if (task := protocol.task_of_job(job)) is not None and is_call(task[2])]
        slots = list(self.worker.runner.slots.items())
        if not jobs and not runs and not slots:
            return False
        lease_ms = int(self.lease * 1000)
        async with redis.pipeline(transaction=False) as pipe:
            if jobs:  # (their queue scores move with their leases: see RENEW_LEASES_SCRIPT)
                pipe.eval(protocol.RENEW_LEASES_SCRIPT, 1 + len(jobs), self.worker.queue_name,
                          *[protocol.lease_key(job) for job in jobs],
                          str(lease_ms), str(timestamp_ms() + lease_ms), *jobs)
            for run_id in runs:
                pipe.hget(protocol.run_key(run_id), "cancel")
            for _, (run_id, checkpoint_id, task_id) in calls:  # (a call cancelled alone)
                pipe.hget(protocol.writes_key(protocol.tag_of(run_id), checkpoint_id),
                          f"fncancel:{made_call(task_id)[0]}")
            for job, key in slots:
                pipe.eval(protocol.RENEW_SLOT_SCRIPT, 1, key, job, str(lease_ms))
            replies = await pipe.execute()
        flags = replies[1 if jobs else 0:][:len(runs) + len(calls)]
        cancelled = {run for run, flag in zip(runs, flags[:len(runs)], strict=True) if flag}
        # (as the cancel channel tells at once, for a message missed while resubscribing)
        cancelled |= {job for (job, task), count in zip(calls, flags[len(runs):], strict=True)
                      if int(count or 0) > made_call(task[2])[1]}
        if cancelled:
            self.loop.call_soon_threadsafe(self.worker.runner.cancel_runs, cancelled)
        return True
