"""What a process keeps of the runs it reads: bounded in entries and in bytes, never stale.

Fast tests on the in-memory Redis."""

from __future__ import annotations

import pytest

from orchestrator.embedded import EmbeddedCluster
from shared import cache, protocol
from shared.store import RunStore
from tests.graphs.one_node import one_node_graph


async def test_kept_checkpoints_stay_within_their_bytes_and_runs_leave_with_them(
    monkeypatch: pytest.MonkeyPatch,
):
    async with EmbeddedCluster([one_node_graph("echo")]) as cluster:
        handles = [await cluster.client.submit("echo", {"log": [f"{i}" * 20_000]}) for i in range(5)]
        for handle in handles:
            await handle.result()
        reader = RunStore(cluster.redis)
        first = await reader.load_run(handles[0].run_id)
        assert first is not None and first.saved is not None
        size = len(protocol.encode_saved(first.saved))
        monkeypatch.setattr(cache, "CHECKPOINT_BYTES", int(2.5 * size))
        records = [first] + [await reader.load_run(h.run_id) for h in handles[1:]]

        assert reader.cache.checkpoint_bytes <= cache.CHECKPOINT_BYTES
        assert reader.cache.checkpoint_ids() == [r.checkpoint_id for r in records[-2:] if r]
        assert reader.cache.run_ids() == [h.run_id for h in handles[-2:]]  # the others left
        again = await reader.load_run(handles[0].run_id)  # read in full again, the same
        assert again == first and again is not first


async def test_a_known_run_is_not_read_back_until_it_changes():
    async with EmbeddedCluster([one_node_graph("echo")]) as cluster:
        handle = await cluster.client.submit("echo", {"log": []})
        await handle.result()
        reader = RunStore(cluster.redis)
        record = await reader.load_run(handle.run_id)
        assert record is not None
        assert await reader.load_run(handle.run_id) is record  # same version: kept
        # another process moves the run on (here: by hand, to a new version and status)
        await cluster.redis.hset(protocol.run_key(handle.run_id), mapping={
            "version": record.version + 1, "status": "failed"})
        latest = await reader.load_run(handle.run_id)
        assert latest is not None and latest is not record
        assert (latest.version, latest.status) == (record.version + 1, "failed")
        assert latest.saved == record.saved  # its checkpoint, unchanged, was not sent again
