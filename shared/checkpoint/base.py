"""LangGraph's checkpointer interface, for code that names its types (`BaseCheckpointSaver`,
`CheckpointTuple`, ...) or reads a saver's checkpoints.

arqgraph writes checkpoints itself, each step's as the run commits it (in the embedded
default's in-memory Redis, or a cluster's Redis): a saver here keeps threads and reads them
back in LangGraph's shapes. Writing a checkpoint through a saver (`put`, `put_writes`) is not
how state changes here: `graph.update_state` is.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, Literal, NamedTuple, TypedDict, TypeVar

from arqgraph.errors import EmptyChannelError

__all__ = [
    "ERROR", "INTERRUPT", "LATEST_VERSION", "RESUME", "SCHEDULED", "WRITES_IDX_MAP",
    "BaseCheckpointSaver", "ChannelVersions", "Checkpoint", "CheckpointMetadata",
    "CheckpointTuple", "EmptyChannelError", "copy_checkpoint", "empty_checkpoint",
    "get_checkpoint_id",
]

V = TypeVar("V", int, float, str)
ChannelVersions = dict[str, str | int | float]

ERROR = "__error__"
SCHEDULED = "__scheduled__"
INTERRUPT = "__interrupt__"
RESUME = "__resume__"
WRITES_IDX_MAP = {ERROR: -1, SCHEDULED: -2, INTERRUPT: -3, RESUME: -4}
LATEST_VERSION = 2


class CheckpointMetadata(TypedDict, total=False):
    """Where a checkpoint came from: its `source`, its `step`, its parents by namespace."""

    source: Literal["input", "loop", "update", "fork"]
    step: int
    parents: dict[str, str]
    run_id: str


class Checkpoint(TypedDict):
    """A thread's state at one step, in LangGraph's shape."""

    v: int
    id: str
    ts: str
    channel_values: dict[str, Any]
    channel_versions: ChannelVersions
    versions_seen: dict[str, ChannelVersions]
    updated_channels: builtins.list[str] | None


class CheckpointTuple(NamedTuple):
    """A checkpoint with its config, metadata, parent and the writes its step has so far."""

    config: dict[str, Any]
    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    parent_config: dict[str, Any] | None = None
    pending_writes: builtins.list[tuple[str, str, Any]] | None = None


def empty_checkpoint() -> Checkpoint:
    return Checkpoint(v=LATEST_VERSION, id="", ts=datetime.now(UTC).isoformat(),
                      channel_values={}, channel_versions={}, versions_seen={},
                      updated_channels=None)


def copy_checkpoint(checkpoint: Checkpoint) -> Checkpoint:
    return Checkpoint(
        v=checkpoint["v"], id=checkpoint["id"], ts=checkpoint["ts"],
        channel_values=dict(checkpoint["channel_values"]),
        channel_versions=dict(checkpoint["channel_versions"]),
        versions_seen={k: dict(v) for k, v in checkpoint["versions_seen"].items()},
        updated_channels=checkpoint.get("updated_channels"),
    )


def get_checkpoint_id(config: dict[str, Any]) -> str | None:
    return (config.get("configurable") or {}).get("checkpoint_id")


class BaseCheckpointSaver(Generic[V]):
    """A checkpointer: reads a thread's checkpoints (`get_tuple`, `list`), forgets a thread
    (`delete_thread`). Each method has an async twin."""

    def __init__(self, *, serde: Any = None) -> None:
        self.serde = serde

    def get(self, config: dict[str, Any]) -> Checkpoint | None:
        found = self.get_tuple(config)
        return found.checkpoint if found else None

    def get_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        raise NotImplementedError

    def list(
        self, config: dict[str, Any] | None, *, filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None, limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        raise NotImplementedError

    def put(self, config: dict[str, Any], checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> dict[str, Any]:
        raise NotImplementedError(
            "arqgraph writes checkpoints as runs commit their steps; change a thread's state "
            "with graph.update_state(...)")

    def put_writes(self, config: dict[str, Any], writes: Sequence[tuple[str, Any]],
                   task_id: str, task_path: str = "") -> None:
        raise NotImplementedError(
            "arqgraph records a step's writes as its tasks finish; change a thread's state "
            "with graph.update_state(...)")

    def delete_thread(self, thread_id: str) -> None:
        raise NotImplementedError

    async def aget(self, config: dict[str, Any]) -> Checkpoint | None:
        found = await self.aget_tuple(config)
        return found.checkpoint if found else None

    async def aget_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        raise NotImplementedError

    async def alist(
        self, config: dict[str, Any] | None, *, filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None, limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        raise NotImplementedError
        yield  # (an async generator)

    async def aput(self, config: dict[str, Any], checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions) -> dict[str, Any]:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: dict[str, Any], writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        raise NotImplementedError

    def get_next_version(self, current: V | None, channel: None) -> V:
        return (current or 0) + 1  # type: ignore[operator,return-value]
