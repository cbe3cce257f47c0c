"""Jobs a worker fails instead of running: one naming a graph or task this worker does not
have, one for a graph version it does not run, one whose payload cannot be read. The task
fails (and so its run), visibly, with the reason; a job naming what does not exist is set
aside as a dead letter (`arqgraph dead-letters` lists them), and the worker keeps serving."""

from __future__ import annotations

import logging

from arq.constants import job_key_prefix

from arqgraph import observe, protocol
from arqgraph.core.pregel import TaskOutcome
from arqgraph.errors import CorruptDataError, ErrorInfo
from arqgraph.storage.dead_letters import set_aside
from arqgraph.storage.runs import Claim, RunStore

log = logging.getLogger("arqgraph.worker")


async def refuse(store: RunStore, job: protocol.TaskJob, exc: Exception,
                 claim: Claim | None = None, poison: str = "") -> str:
    """Fail the job's task (and so its run) with `exc`; `poison`: the id of a job naming
    what does not exist here (a graph, a task), which is set aside as a dead letter."""
    if poison:
        await set_aside(store.redis, job_key_prefix + poison, str(exc),
                        job.model_dump_json().encode(), job.run_id)
    else:
        log.error("job for run %s task %s refused: %s", job.run_id, job.task_id, exc)
    observe.current().job_refused(job.graph, type(exc).__name__)
    node = job.task_id.split(":")[-1]
    outcome = TaskOutcome(job.task_id, node, error=ErrorInfo.of(exc, node))
    if await store.load_run(job.run_id) is not None:
        await store.post_outcome(job.graph, job.run_id, job.checkpoint_id, outcome, (), claim)
    return f"refused: {exc}"


async def refuse_poison(store: RunStore, job_id: str, where: str, why: str, data: bytes) -> None:
    """A job that cannot be read (`where`: its key): set it aside, and fail the task its id
    names (and so its run), with CorruptDataError saying why."""
    task = protocol.task_of_job(job_id)
    await set_aside(store.redis, where, why, data, task[0] if task else "")
    if task is None:
        return
    run_id, checkpoint_id, task_id = task
    try:
        record = await store.load_run(run_id)
    except CorruptDataError:  # (its orchestrator sets the record aside and fails the run)
        return
    if record is None or record.status != "running":
        return
    job = protocol.TaskJob(run_id=run_id, checkpoint_id=checkpoint_id, step=-1,
                           task_id=task_id, graph=record.graph, fingerprint="")
    await refuse(store, job, CorruptDataError(f"job {job_id} at {where}: {why}"))
