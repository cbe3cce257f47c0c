"""Time travel across subgraphs: where each graph of a replay or fork starts, as LangGraph.

A subgraph's checkpoint records the checkpoints of its parents at the time (`parents`, by
namespace; LangGraph's metadata of that name), and its config carries them with its own as a
`checkpoint_map`. So a config read from a subgraph's state or history addresses the whole
stack: given to the root graph, the root replays from its own entry, and each subgraph whose
namespace has an entry loads that checkpoint.

When the root travels in time (a `checkpoint_id` without `Command(resume=...)`), a subgraph
with no entry of its own starts from its state as it was before the root's replay point: its
latest checkpoint saved under a root checkpoint older than that point, or none. Only its first
call in the run does; later calls (a subgraph in a loop) go on from its latest, as LangGraph's
`ReplayState`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from arqgraph import protocol
from arqgraph.constants import CONF
from arqgraph.protocol import RunRecord

if TYPE_CHECKING:  # (the run store's module plans moves with this one's helpers)
    from arqgraph.storage.runs import RunStore

CHECKPOINT_MAP = "checkpoint_map"
"""LangGraph's configurable key: a checkpoint id by namespace, `""` for the root graph's."""
REPLAY = "__arqgraph_replay"
"""The configurable key of a time-travelling run: the root checkpoint its subgraphs start before
(`checkpoint`) and the root run that counts their first calls (`run`)."""
NO_CHECKPOINT = "-"
"""A `from_checkpoint` that names no checkpoint: the run starts on an empty state."""
SEPARATOR = "|"


def checkpoint_map(config: Mapping[str, Any] | None) -> dict[str, str]:
    """The config's `checkpoint_map`; an empty one when it has none (or not a mapping)."""
    found = ((config or {}).get(CONF) or {}).get(CHECKPOINT_MAP)
    return {str(k): str(v) for k, v in found.items() if v} if isinstance(found, Mapping) else {}


def ancestors(entries: Mapping[str, str], namespace: str) -> dict[str, str]:
    """The entries of a checkpoint map that name the graphs above namespace `namespace` (the
    root's, `""`, and each enclosing subgraph's), not its own nor unrelated ones."""
    if not namespace:
        return {}
    return {ns: cid for ns, cid in entries.items()
            if ns == "" or namespace.startswith(ns + SEPARATOR)}


def snapshot_config(thread: str, checkpoint_id: str, parents: Mapping[str, str]) -> dict[str, Any]:
    """The config of a checkpoint of thread `thread` (a subgraph's: `thread_id` and
    `checkpoint_ns`), with its `checkpoint_map` when it has parents, as LangGraph shows it."""
    thread_id, namespace = protocol.split_thread(thread)
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": namespace,
                                    "checkpoint_id": checkpoint_id}
    if parents:
        configurable[CHECKPOINT_MAP] = {**parents, namespace: checkpoint_id}
    return {CONF: configurable}


def from_root(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The config a graph invoked from outside runs with: one addressing a subgraph's
    checkpoint (a `checkpoint_ns`) runs the graph itself, from the root checkpoint its
    `checkpoint_map` names (its latest without one); the map goes down to the subgraphs."""
    configurable = (config or {}).get(CONF) or {}
    if config is None or not configurable.get("checkpoint_ns"):
        return None if config is None else dict(config)
    root = {k: v for k, v in configurable.items() if k not in ("checkpoint_ns", "checkpoint_id")}
    if checkpoint_map(config).get(""):
        root["checkpoint_id"] = checkpoint_map(config)[""]
    return {**config, CONF: root}


async def replay_bound(store: RunStore, thread: str, checkpoint_id: str) -> str | None:
    """The root checkpoint a time-travelling run's subgraphs start before: the one it replays,
    or, for a checkpoint made by `update_state` or a fork, that one's parent (the subgraphs'
    checkpoints of the original run were saved after it). None when it names no checkpoint."""
    saved = await store.threads.saved_checkpoint(protocol.thread_tag(thread), checkpoint_id)
    if saved is None:
        return None
    return saved.parent if saved.source in ("update", "fork") and saved.parent else saved.id


async def child_start(
    store: RunStore, record: RunRecord, namespace: str, thread: str
) -> tuple[str, str] | None:
    """Where a subgraph's child run on `thread` (namespace `namespace`) starts, when its parent
    run travels in time: ("exact", id) for a checkpoint the map names, ("before", id) for its
    state before the root's replay point (`NO_CHECKPOINT` for none); None to start as usual."""
    exact = checkpoint_map(record.config).get(namespace)
    if exact:
        return "exact", exact
    replay = (record.config.get(CONF) or {}).get(REPLAY)
    if not isinstance(replay, Mapping) or not replay.get("checkpoint"):
        return None
    # its first call in the root run (by namespace without task ids), counted on the root
    # run's hash, which every worker sees and which expires with the run
    stable = SEPARATOR.join(part.split(":")[0] for part in namespace.split(SEPARATOR))
    run = protocol.run_key(str(replay["run"]))
    if not await store.redis.hsetnx(run, f"replayed:{stable}", "1"):  # type: ignore[misc]
        return None
    return "before", await _saved_before(store, thread, str(replay["checkpoint"]))


async def _saved_before(store: RunStore, thread: str, bound: str) -> str:
    """The subgraph's latest checkpoint saved under a root checkpoint older than `bound`."""
    user_thread, _ = protocol.split_thread(thread)
    root = [s.id for s in await store.threads.history(protocol.thread_tag(user_thread))]
    if bound not in root:
        return NO_CHECKPOINT
    older = set(root[root.index(bound) + 1:])  # (the history is newest first)
    for saved in await store.threads.history(protocol.thread_tag(thread)):
        if saved.parents.get("") in older:
            return saved.id
    return NO_CHECKPOINT


def child_map(record: RunRecord, checkpoint_id: str) -> dict[str, str]:
    """The checkpoint map a task of `record`'s step hands its subgraphs: the run's own, with
    the run's namespace at the step's checkpoint."""
    own = str((record.config.get(CONF) or {}).get("checkpoint_ns") or "")
    return {**checkpoint_map(record.config), own: checkpoint_id}
