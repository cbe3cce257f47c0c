"""A node's `concurrency` and `rate_limit`, and a run's `max_concurrency`, held pool-wide: a
job that may not start yet goes back to the queue (arq's Retry), so its wait holds no worker
slot. The slots live in Redis (`arqgraph.storage.limits`); the worker keeps the ones its jobs
hold in `slots` (job key -> slots key), which its lease keeper renews."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Literal

from arq.worker import Retry

from arqgraph import protocol
from arqgraph.protocol import RunRecord
from arqgraph.storage.runs import Claim, RunStore

if TYPE_CHECKING:  # annotations only: the engine does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph
    from arqgraph.graph.specs import NodeSpec

RUN_SLOTS = "~run:"  # (the slots of a run's `max_concurrency`, beside its nodes' own)


def run_slot(key: str) -> str:
    """The name under which a job holds its run's slot (its node's slot goes by its key)."""
    return f"{key}{RUN_SLOTS}"


def has_limits(graph: CompiledStateGraph) -> bool:
    return any(spec.concurrency is not None or spec.rate_interval is not None
               for spec in graph.nodes.values())


async def wait_for_limits(store: RunStore, slots: dict[str, str], job: protocol.TaskJob,
                          spec: NodeSpec, key: str, lease: float) -> None:
    """Send the job back to the queue until the node's rate limit lets it start and one of
    its concurrency slots is free (then held in `slots`)."""
    interval = spec.rate_interval
    if interval is not None:
        wait = await store.limits.rate_wait(job.graph, spec.name, key, interval)
        if wait > 0:
            raise Retry(defer=wait)
    if spec.concurrency is not None:
        if not await store.limits.acquire_slot(job.graph, spec.name, key, spec.concurrency,
                                               lease):
            raise Retry(defer=random.uniform(0.02, 0.1))
        slots[key] = protocol.slots_key(job.graph, spec.name)


async def wait_for_run_slot(store: RunStore, slots: dict[str, str], job: protocol.TaskJob,
                            record: RunRecord, key: str, claim: Claim | None | Literal[False],
                            lease: float) -> None:
    """A run given `max_concurrency` in its config runs at most that many tasks at once,
    pool-wide, as LangGraph's: a job finding them all taken hands its task back and goes
    back to the queue."""
    limit = record.config.get("max_concurrency")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        return
    node = f"{RUN_SLOTS}{job.run_id}"
    held = run_slot(key)  # (its member in the slots, renewed by the lease keeper under it)
    if not await store.limits.acquire_slot(job.graph, node, held, limit, lease):
        if claim:
            await store.end_attempt(record.tag, job.checkpoint_id, job.task_id, claim,
                                    failed=False)
        raise Retry(defer=random.uniform(0.02, 0.1))
    slots[held] = protocol.slots_key(job.graph, node)
