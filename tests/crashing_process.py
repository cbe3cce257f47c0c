"""A test-only orchestrator or worker that kills itself with SIGKILL at one exact point of its
work.

    python -m tests.crashing_process [--worker] [--no-moves] \\
        [--crash-at POINT --crash-thread THREAD --marker PATH] [any option of the role] SPEC...

It serves exactly as `arqgraph orchestrator` (or, with `--worker`, `arqgraph worker`) does (the
same parser and `_serve_orchestrator` or `_serve_worker` of `arqgraph.cli`), except that a
few methods of the real `RunStore` and `JobQueue` (and its enqueue script) are wrapped, here and
not in product code, so that when a run of thread THREAD reaches POINT the process writes the
marker file and sends itself SIGKILL: no clean-up, no `finally`, no flush of anything. The crash
happens once: if the marker file already exists, the point is passed as usual, so a restarted
instance with the same arguments serves normally. A worker makes the moves of the runs whose
step's only task it ran, with the post of its outcome (`arqgraph.storage.moves`): the points
`step-commit` and `after-enqueue` of those moves are its (right after that post). With
`--no-moves`, a worker leaves every move to the orchestrator (as before workers made any), so
that every point is the orchestrator's.

POINT is one of:

- `start-commit`: right after the commit of the run's first checkpoint (superstep -1);
- `step-commit:K`: right after the commit of checkpoint K (and of its jobs, when they are
  enqueued with it; else before any of them is);
- `enqueue:K:N`: inside the enqueue of superstep K's tasks, right after the Nth job was enqueued
  (only in an enqueue of more than N tasks, so that some jobs are enqueued and some not);
- `after-enqueue:K`: right after every missing task of superstep K was enqueued (alone or with
  the step's commit), while the step runs (between supersteps);
- `outcomes-read:K`: right after reading the outcomes of superstep K with all of them present
  (alone, or with the run), before the next checkpoint is committed;
- `before-finish`: right before the commit that finishes the run as done;
- `after-finish`: right after that commit (which also retired the run: expiry, active set).

The marker file gets a JSON object: the point, the run and what was done there.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from arq.connections import ArqRedis
from arq.constants import job_key_prefix

from arqgraph import cli, protocol
from arqgraph.storage import queue as queue_module
from arqgraph.storage.queue import JobQueue
from arqgraph.storage.runs import RunStore
from arqgraph.workers.runner import NodeRunner

log = logging.getLogger("arqgraph.crashing")

KINDS = ("start-commit", "step-commit", "enqueue", "after-enqueue", "outcomes-read",
         "before-finish", "after-finish")
WITH_STEP = ("step-commit", "enqueue", "after-enqueue", "outcomes-read")


@dataclass(frozen=True)
class CrashPoint:
    kind: str
    step: int | None = None
    count: int | None = None

    @classmethod
    def parse(cls, text: str) -> CrashPoint:
        kind, *rest = text.split(":")
        numbers = [int(n) for n in rest]
        expected = 2 if kind == "enqueue" else 1 if kind in WITH_STEP else 0
        if kind not in KINDS or len(numbers) != expected:
            raise argparse.ArgumentTypeError(f"unknown crash point {text!r}")
        if kind == "enqueue" and numbers[1] < 1:
            raise argparse.ArgumentTypeError("enqueue:K:N needs N >= 1")
        return cls(kind, *numbers)


class Crasher:
    def __init__(self, point: CrashPoint, thread_id: str, marker: str) -> None:
        self.point = point
        self.tag = protocol.thread_tag(thread_id)
        self.marker = marker

    def at(self, kind: str, tag: str, step: int | None = None) -> bool:
        """Whether a run of thread `tag` is at the crash point (of `kind`, at superstep `step`)."""
        return (
            kind == self.point.kind
            and tag == self.tag
            and (self.point.step is None or step == self.point.step)
            and not os.path.exists(self.marker)
        )

    def crash(self, tag: str, **detail: Any) -> None:
        """Write the marker, then SIGKILL this process; nothing if the marker already exists."""
        try:
            fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return
        record = {"point": self.point.kind, "step": self.point.step, "count": self.point.count,
                  "tag": tag, "pid": os.getpid(), **detail}
        with os.fdopen(fd, "w") as out:
            json.dump(record, out)
            out.flush()
            os.fsync(out.fileno())
        print(f"crashing_process: SIGKILL at {record}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class _Enqueuing:
    tag: str
    step: int
    total: int
    done: list[str] = field(default_factory=list)


_enqueuing: ContextVar[_Enqueuing | None] = ContextVar("enqueuing", default=None)
_TAG_OF_KEY = re.compile(r"\{(.*)\}")


def _tag_of_key(key: str) -> str:
    match = _TAG_OF_KEY.search(key)
    assert match is not None, key
    return match.group(1)


def _commit_fields(args: Sequence[Any]) -> dict[str, Any]:
    """The run fields a COMMIT_SCRIPT call writes (see arqgraph.protocol)."""
    n = int(args[1])
    return {str(args[i]): args[i + 1] for i in range(14, 14 + 2 * n, 2)}


def _version(args: Sequence[Any]) -> int:
    """The version a commit expects (its first argument: '<version>:<checkpoint id>')."""
    return int(str(args[0]).partition(":")[0])


def _commit_site(keys: Sequence[str], args: Sequence[Any]) -> tuple[str, str | None, int | None]:
    """A COMMIT_SCRIPT call's thread tag, the run's new status (if any) and the superstep of
    the checkpoint it saves (if any)."""
    status = _commit_fields(args).get("status")
    if isinstance(status, bytes):
        status = status.decode()
    step = protocol.decode_saved(args[3]).checkpoint.step if args[2] else None
    return _tag_of_key(keys[0]), status, step


def _commit_jobs(keys: Sequence[str], args: Sequence[Any]) -> list[str]:
    """The task ids of the jobs a COMMIT_SCRIPT call enqueues with the commit (see
    arqgraph.protocol): its keys from the tenth are each job's arq key and result key."""
    if args[5] != "" or len(keys) <= 6:  # a run that ends, or no jobs
        return []
    return [_task_of(str(k)[len(job_key_prefix):]) for k in keys[9::2]]


def _task_of(job_id: str) -> str:
    task = protocol.task_of_job(job_id)
    assert task is not None, job_id
    return task[2]


def install(crasher: Crasher, worker: bool = False) -> None:
    """Wrap the real RunStore, JobQueue and arq methods with the crash point's check. An
    orchestrator enqueues one job per call (so that a crash can fall between two jobs of a
    step); a worker as usual (it moves a run on only with all the next step's jobs at once)."""
    original_init = RunStore.__init__
    original_queue_init = JobQueue.__init__
    original_enqueue = JobQueue.enqueue
    original_outcomes = RunStore.outcomes
    original_load_step = RunStore.load_step
    original_post = RunStore.post_outcome

    def after_commit(keys: Sequence[str], args: Sequence[Any], held: str | None = None) -> None:
        """The points right after a commit (COMMIT_SCRIPT's keys and arguments) was made;
        `held`: the job that a worker's post took with it (the next one it runs)."""
        tag, status, step = _commit_site(keys, args)
        if status == "done" and crasher.at("after-finish", tag):
            crasher.crash(tag, version=_version(args) + 1)
        if step == -1 and crasher.at("start-commit", tag):
            crasher.crash(tag, version=_version(args) + 1, checkpoint=step)
        jobs = _commit_jobs(keys, args)
        if status is None and crasher.at("step-commit", tag, step):
            crasher.crash(tag, version=_version(args) + 1, checkpoint=step, enqueued=jobs,
                          held=held and _task_of(held))
        if jobs and crasher.at("after-enqueue", tag, step):
            crasher.crash(tag, enqueued=jobs)

    def init(self: RunStore, redis: ArqRedis) -> None:
        original_init(self, redis)
        script = self._commit

        async def commit(keys: Sequence[str], args: Sequence[Any]) -> Any:
            tag, status, _ = _commit_site(keys, args)
            if status == "done" and crasher.at("before-finish", tag):
                crasher.crash(tag, version=_version(args))
            committed = await script(keys=keys, args=args)
            if committed:
                after_commit(keys, args)
            return committed

        self._commit = commit  # type: ignore[assignment]

    def queue_init(self: JobQueue, redis: ArqRedis, name: str) -> None:
        original_queue_init(self, redis, name)
        self._enqueue = counting(self._enqueue)  # type: ignore[assignment]

    async def enqueue(self: JobQueue, record: protocol.RunRecord, step: int,
                      tasks: Sequence[Any], fingerprint: str,
                      expected: int | None = None) -> None:
        token = _enqueuing.set(_Enqueuing(record.tag, step, len(tasks)))
        try:
            await original_enqueue(self, record, step, tasks, fingerprint, expected)
        finally:
            _enqueuing.reset(token)
        if crasher.at("after-enqueue", record.tag, step):
            crasher.crash(record.tag, enqueued=[t.id for t in tasks])

    def counting(script: Any) -> Any:
        """The enqueue script, one job per call (ENQUEUE_CHUNK = 1 here), counting the jobs."""

        async def enqueue_jobs(keys: Sequence[str], args: Sequence[Any]) -> Any:
            added = await script(keys=keys, args=args)
            current = _enqueuing.get()
            if current is not None:
                current.done.append(_task_of(str(args[4])))
                count = crasher.point.count or 0
                if (len(current.done) == count and current.total > count
                        and crasher.at("enqueue", current.tag, current.step)):
                    crasher.crash(current.tag, enqueued=current.done, of=current.total)
            return added

        return enqueue_jobs

    def read_outcomes(tag: str, task_ids: Sequence[str], found: dict[str, Any]) -> None:
        step = crasher.point.step
        if (task_ids and len(found) == len(task_ids)
                and all(t.startswith(f"{step}:") for t in task_ids)
                and crasher.at("outcomes-read", tag, step)):
            crasher.crash(tag, outcomes=sorted(found))

    async def outcomes(
        self: RunStore, tag: str, checkpoint_id: str, task_ids: Sequence[str]
    ) -> Any:
        found = await original_outcomes(self, tag, checkpoint_id, task_ids)
        read_outcomes(tag, task_ids, found)
        return found

    async def load_step(self: RunStore, run_id: str) -> Any:
        record, found = await original_load_step(self, run_id)
        if record is not None and record.saved is not None and found is not None:
            read_outcomes(record.tag, [t.id for t in record.saved.checkpoint.tasks], found)
        return record, found

    async def post_outcome(self: RunStore, *args: Any, **kwargs: Any) -> Any:
        posted = await original_post(self, *args, **kwargs)
        move = inspect.signature(original_post).bind(self, *args, **kwargs).arguments.get("move")
        if posted.code == 3:  # (a worker's post that moved the run on, or ended it)
            after_commit(move.call.keys, move.call.args,
                         posted.next_job and posted.next_job.job_id)
        return posted

    RunStore.__init__ = init  # type: ignore[method-assign]
    RunStore.post_outcome = post_outcome  # type: ignore[method-assign]
    RunStore.outcomes = outcomes  # type: ignore[method-assign]
    RunStore.load_step = load_step  # type: ignore[method-assign]
    JobQueue.__init__ = queue_init  # type: ignore[method-assign]
    JobQueue.enqueue = enqueue  # type: ignore[method-assign]
    if not worker:
        queue_module.ENQUEUE_CHUNK = 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.crashing_process",
        description="`arqgraph orchestrator` (or `worker`) that SIGKILLs itself once at a crash "
        "point; every other argument is passed to it.")
    parser.add_argument("--worker", action="store_true", help="serve as `arqgraph worker`")
    parser.add_argument("--no-moves", action="store_true",
                        help="(a worker) leave every move of a run to the orchestrator")
    parser.add_argument("--crash-at", type=CrashPoint.parse, metavar="POINT")
    parser.add_argument("--crash-thread", metavar="THREAD")
    parser.add_argument("--marker", metavar="PATH",
                        help="file written right before the crash; if it exists, no crash")
    ours, rest = parser.parse_known_args(argv)
    role = "worker" if ours.worker else "orchestrator"
    args = cli.build_parser().parse_args([role, *rest])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if ours.no_moves:
        NodeRunner._moves_on = lambda *_: False  # type: ignore[method-assign]
    if ours.crash_at is not None:
        if not (ours.crash_thread and ours.marker):
            parser.error("--crash-at needs --crash-thread and --marker")
        install(Crasher(ours.crash_at, ours.crash_thread, ours.marker), ours.worker)
        log.info("will crash at %s of a run of thread %s", ours.crash_at, ours.crash_thread)
    serve = cli._serve_worker if ours.worker else cli._serve_orchestrator
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
