"""Where a task's subgraphs keep their checkpoints: LangGraph's checkpoint namespaces
(`node:task-uuid`, nested with `|`), and the UUID a task is shown by. Workers name a child run's
namespace with these; the checkpoints a run saves show them for the tasks that run subgraphs."""

from __future__ import annotations

import functools
import hashlib
import uuid
from typing import TYPE_CHECKING

from arqgraph.protocol import RunRecord

if TYPE_CHECKING:  # annotations only: storage does not import the graph API
    from arqgraph.graph.compiled import CompiledStateGraph

NAMESPACE_SEPARATOR = "|"


def task_uuid(record: RunRecord, checkpoint_id: str, task_id: str) -> str:
    """A task's id as LangGraph shows it (a UUID), the same each time the task runs."""
    return _task_uuid(record.tag, checkpoint_id, task_id)


@functools.lru_cache(maxsize=4096)  # (a task's stream, runner and subgraphs each ask)
def _task_uuid(tag: str, checkpoint_id: str, task_id: str) -> str:
    digest = hashlib.sha256(f"{tag}:{checkpoint_id}:{task_id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def namespace(record: RunRecord, node: str, task: str, graph: CompiledStateGraph, n: int) -> str:
    """The checkpoint namespace of a task's `n`-th subgraph call: `node:task-uuid` below the
    parent's own (then `|n` after the first call, as LangGraph counts them); just `node` for a
    subgraph compiled with `checkpointer=True`, whose state carries over from one call to the
    next."""
    own = node if graph.persistence is True else f"{node}:{task}"
    return below(record, f"{own}{NAMESPACE_SEPARATOR}{n}" if n else own)


def below(record: RunRecord, own: str) -> str:
    """A namespace `own` inside the run's: the run's own namespace (from its config), then
    `own`."""
    parent = str((record.config.get("configurable") or {}).get("checkpoint_ns") or "")
    return f"{parent}{NAMESPACE_SEPARATOR}{own}" if parent else own
