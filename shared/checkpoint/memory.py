"""`InMemorySaver`: LangGraph's in-memory checkpointer, here the embedded default's in-memory store.

`graph.compile(checkpointer=InMemorySaver())` makes the embedded default keep the graph's
threads between calls, in this process, for as long as the saver lives: what LangGraph's
saver does. A cluster keeps threads in its Redis whatever checkpointer the graph was given.
The saver reads its threads back in LangGraph's shapes (`get_tuple`, `list`) and forgets them
(`delete_thread`).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterator
from typing import Any

from arqgraph.checkpoint.base import (
    ERROR,
    INTERRUPT,
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from arqgraph.protocol import split_thread
from arqgraph.storage.in_memory import Keyspace
from arqgraph.types import StateSnapshot


class InMemorySaver(BaseCheckpointSaver[int]):
    """Threads and their checkpoints in this process's memory."""

    def __init__(self, *, serde: Any = None, factory: Any = None) -> None:
        super().__init__(serde=serde)
        self.keyspace = Keyspace()

    async def aget_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        async with self._client() as client:
            snapshot = await client.get_state(config)
        return _tuple(snapshot) if snapshot.config.get("configurable", {}).get(
            "checkpoint_id") and snapshot.created_at else None

    def get_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        from arqgraph.embedded import run_sync

        return run_sync(self.aget_tuple(config))

    async def alist(
        self, config: dict[str, Any] | None, *, filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None, limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for found in await self._list(config, filter, before, limit):
            yield found

    def list(
        self, config: dict[str, Any] | None, *, filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None, limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        from arqgraph.embedded import run_sync

        yield from run_sync(self._list(config, filter, before, limit))

    async def adelete_thread(self, thread_id: str) -> None:
        async with self._client() as client:
            await client.delete_thread(str(thread_id))

    def delete_thread(self, thread_id: str) -> None:
        from arqgraph.embedded import run_sync

        run_sync(self.adelete_thread(thread_id))

    async def _list(self, config: dict[str, Any] | None, filter: dict[str, Any] | None,
                    before: dict[str, Any] | None, limit: int | None
                    ) -> builtins.list[CheckpointTuple]:
        if not config or not (config.get("configurable") or {}).get("thread_id"):
            raise ValueError("list() needs a config with a thread_id: threads are listed one "
                             "at a time here")
        configurable = config["configurable"]
        async with self._client() as client:
            history = await client.get_state_history(config, filter=filter, before=before,
                                                     limit=limit)
            if "checkpoint_ns" not in configurable and before is None:  # every namespace,
                # as LangGraph's saver lists them (`before` names one namespace's checkpoint)
                thread = str(configurable["thread_id"])
                for child in await client.store.threads.subgraph_threads(thread):
                    if limit is not None and len(history) >= limit:
                        break
                    _, namespace = split_thread(child)
                    history += await client.get_state_history(
                        {"configurable": {"thread_id": thread, "checkpoint_ns": namespace}},
                        filter=filter, limit=None if limit is None else limit - len(history))
        return [_tuple(snapshot) for snapshot in history]

    def _client(self) -> Any:
        from contextlib import asynccontextmanager

        from arqgraph.client import Client
        from arqgraph.embedded import in_memory_redis

        @asynccontextmanager
        async def opened() -> Any:
            client = Client(in_memory_redis(self.keyspace))
            try:
                yield client
            finally:
                await client.close()

        return opened()


def _tuple(snapshot: StateSnapshot) -> CheckpointTuple:
    """A snapshot in LangGraph's checkpoint shapes: its values as channel values, its tasks'
    results, errors and interrupts as the step's pending writes."""
    configurable = snapshot.config["configurable"]
    namespace = configurable.get("checkpoint_ns", "")
    config = {"configurable": {"thread_id": configurable["thread_id"], "checkpoint_ns": namespace,
                               "checkpoint_id": configurable["checkpoint_id"]}}
    parent = None
    if snapshot.parent_config:
        parent = {"configurable": {
            "thread_id": configurable["thread_id"], "checkpoint_ns": namespace,
            "checkpoint_id": snapshot.parent_config["configurable"]["checkpoint_id"]}}
    writes: list[tuple[str, str, Any]] = []
    for task in snapshot.tasks:
        if isinstance(task.result, dict):
            writes += [(task.id, key, value) for key, value in task.result.items()]
        if task.error is not None:
            writes.append((task.id, ERROR, task.error))
        if task.interrupts:
            writes.append((task.id, INTERRUPT, list(task.interrupts)))
    metadata = CheckpointMetadata(**(snapshot.metadata or {}))  # type: ignore[typeddict-item]
    checkpoint = Checkpoint(
        v=4, id=configurable["checkpoint_id"], ts=snapshot.created_at or "",
        channel_values=dict(snapshot.values) if isinstance(snapshot.values, dict) else {},
        channel_versions={}, versions_seen={}, updated_channels=None,
    )
    return CheckpointTuple(config, checkpoint, metadata, parent, writes)


MemorySaver = InMemorySaver  # LangGraph's older name
