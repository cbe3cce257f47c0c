"""What a task's earlier attempts left that its next one needs: the ids of the questions an
entrypoint stopped at (its answers are for them), and the error of a node whose error handler
did not finish (only the handler runs again). Both are read from the outcomes set aside when
the task was run again (`ThreadStore.priors`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from arqgraph import protocol
from arqgraph.core.pregel import Task
from arqgraph.errors import ErrorInfo
from arqgraph.protocol import RunRecord
from arqgraph.storage.runs import Claim, RunStore

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph


async def answered_ids(store: RunStore, graph: CompiledStateGraph, record: RunRecord,
                       job: protocol.TaskJob, task: Task, claim: Claim) -> list[str] | None:
    """For an entrypoint resumed with answers: the ids of the interrupts it stopped at
    before, in order, which its answers are for (its task calls then take theirs by id)."""
    if not graph.returns_value or not claim.resume:
        return None
    priors = await store.threads.priors(record.tag, job.checkpoint_id, task.id)
    return [entry[0] for prior in priors for entry in prior.interrupts]


async def failed_before(store: RunStore, graph: CompiledStateGraph, record: RunRecord,
                        job: protocol.TaskJob, task: Task, claim: Claim) -> ErrorInfo | None:
    """The error of a node whose error handler failed or was stopped after it, in an earlier
    attempt of this task (the run failed then, and is resumed): only the handler runs again."""
    spec = graph.nodes.get(task.node)
    if spec is None or spec.error_handler is None or claim.attempt <= 1:
        return None
    priors = await store.threads.priors(record.tag, job.checkpoint_id, task.id)
    if not priors or priors[-1].error is None or priors[-1].node_error is None:
        return None
    return priors[-1].node_error
