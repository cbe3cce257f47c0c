"""A producer-side router over several shards: a prototype, not a product.

A shard is one Redis and its own pool (orchestrators and workers). The router places each run by
its thread's hash tag, so that a thread always lands on the same shard, and it finds a run again
from its id alone: a run id starts with its thread's tag (`arqgraph.protocol.keys.new_run_id`).
A run without a thread id gets a thread of its own, named from a key the router draws before it
submits, so that its shard is known before the run exists.

Placement is rendezvous hashing: each shard scores a tag and the highest score wins. Adding a
shard moves only the tags the new shard wins (about 1 in N), but it does move them: a product
must keep threads where they are (see docs/scaling.md).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from arqgraph import protocol
from arqgraph.client import Client, RunHandle
from arqgraph.types import StateSnapshot


def shard_score(shard: str, tag: str) -> int:
    """The rendezvous score of a shard for a tag: stable across processes and Python runs
    (no `hash()`, which is salted per process)."""
    return int.from_bytes(hashlib.sha1(f"{shard}\x00{tag}".encode()).digest()[:8], "big")


def place_tag(tag: str, shards: Sequence[str]) -> int:
    """The index of the shard a thread tag lives on."""
    if not shards:
        raise ValueError("no shards to place on")
    return max(range(len(shards)), key=lambda i: shard_score(shards[i], tag))


def thread_of_config(config: Mapping[str, Any] | None) -> str | None:
    """The user's thread id a config names, if any. A subgraph's namespace is left out: a
    child's checkpoints live with its root thread's, on the same shard."""
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    return None if thread_id is None else str(thread_id)


class ShardRouter:
    """Submits runs to the shard of their thread and reads them back from it.

    `names` identify the shards for placement. They must stay the same for the life of the
    threads: a URL that changes (a new host) must keep its name."""

    def __init__(self, clients: Sequence[Client], names: Sequence[str] | None = None) -> None:
        self.clients = list(clients)
        self.names = list(names) if names is not None else [f"shard-{i}" for i in
                                                            range(len(self.clients))]
        if len(self.names) != len(self.clients) or len(set(self.names)) != len(self.names):
            raise ValueError("one unique name per shard")

    @classmethod
    async def connect(cls, urls: Sequence[str], names: Sequence[str] | None = None) -> ShardRouter:
        return cls([await Client.connect(url) for url in urls], names)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()

    def shard_of_thread(self, thread_id: str) -> int:
        return place_tag(protocol.thread_tag(thread_id), self.names)

    def shard_of_run(self, run_id: str) -> int:
        """The shard of a run, from its id alone: its id starts with its thread's tag."""
        return place_tag(protocol.tag_of(run_id), self.names)

    async def submit(self, graph: str, input: Any, config: Mapping[str, Any] | None = None,
                     **options: Any) -> tuple[int, RunHandle]:
        """The shard the run went to and its handle. Without a thread id, a key is drawn for the
        run (or the caller's `run_id` is used) and the run's own thread is named from it, as
        `Client.submit` names it: the run id's tag is then known before the run exists."""
        thread_id = thread_of_config(config)
        if thread_id is None:
            key = options.pop("run_id", None) or uuid.uuid4().hex
            shard = self.shard_of_run(protocol.keyed_run_id(f"run:{key}", key))
            options["run_id"] = key
        else:
            shard = self.shard_of_thread(thread_id)
        handle = await self.clients[shard].submit(graph, input, config, **options)
        return shard, handle

    def handle(self, run_id: str, graph: str = "") -> RunHandle:
        """A handle on a run that any producer submitted, found from its id."""
        return self.clients[self.shard_of_run(run_id)].handle(run_id, graph)

    async def get_state(self, config: Mapping[str, Any]) -> StateSnapshot:
        thread_id = thread_of_config(config)
        if thread_id is None:
            raise ValueError("get_state needs config['configurable']['thread_id']")
        return await self.clients[self.shard_of_thread(thread_id)].get_state(config)
