"""What a process keeps of the runs it has read, so that it need not read them again.

A checkpoint never changes once saved (only its `view`, which no process that loads runs
reads), and every task of a step loads the same one: a worker that keeps it fetches and decodes
it once per step, not once per task. A run's fields change only with its version (and its
checkpoint: a rolled-back Redis can show a version again on another), so a process
that knows the version it has (the orchestrator: the one it has just committed) need not read
them back. Both stay within bounds: a process with thousands of runs in flight keeps the most
recently used, within a count and a number of bytes.
"""

from __future__ import annotations

from collections import OrderedDict

from arqgraph.protocol import RunRecord, SavedCheckpoint

CHECKPOINTS = 2048  # decoded checkpoints a process keeps...
CHECKPOINT_BYTES = 64 * 1024 * 1024  # ...and at most this many bytes of them (encoded)
RUNS = 4096  # decoded runs a process keeps, each valid while its version is unchanged


class RunCache:
    """Decoded checkpoints (least recently used leave first) and the last read of each run."""

    def __init__(self) -> None:
        self._checkpoints: OrderedDict[str, tuple[SavedCheckpoint, int]] = OrderedDict()  # and size
        self.checkpoint_bytes = 0  # of the checkpoints kept, encoded
        self._runs: OrderedDict[str, RunRecord] = OrderedDict()

    def checkpoint(self, checkpoint_id: str) -> SavedCheckpoint | None:
        kept = self._checkpoints.get(checkpoint_id)
        if kept is None:
            return None
        self._checkpoints.move_to_end(checkpoint_id)
        return kept[0]

    def has_checkpoint(self, checkpoint_id: str) -> bool:
        return checkpoint_id in self._checkpoints

    def checkpoint_ids(self) -> list[str]:
        """Those kept, least recently used first."""
        return list(self._checkpoints)

    def keep_checkpoint(self, saved: SavedCheckpoint, size: int) -> None:
        """Keep a decoded checkpoint (`size`: bytes encoded), the least recently used leaving
        first beyond CHECKPOINTS of them or CHECKPOINT_BYTES; the record of its run leaves
        with it (it holds the checkpoint)."""
        old = self._checkpoints.pop(saved.id, None)
        self.checkpoint_bytes += size - (old[1] if old else 0)
        self._checkpoints[saved.id] = (saved, size)
        while len(self._checkpoints) > CHECKPOINTS or (
            self.checkpoint_bytes > CHECKPOINT_BYTES and len(self._checkpoints) > 1
        ):
            cid, (gone, gone_size) = self._checkpoints.popitem(last=False)
            self.checkpoint_bytes -= gone_size
            run = self._runs.get(gone.run_id)
            if run is not None and run.checkpoint_id == cid:
                del self._runs[gone.run_id]

    def run(self, run_id: str) -> RunRecord | None:
        record = self._runs.get(run_id)
        if record is not None:
            self._runs.move_to_end(run_id)
        return record

    def run_ids(self) -> list[str]:
        """Those kept, least recently used first."""
        return list(self._runs)

    def keep_run(self, record: RunRecord) -> RunRecord:
        """Keep `record` as this version of its run; only with its checkpoint kept too, so
        that records keep no checkpoint alive beyond `keep_checkpoint`'s bounds."""
        if record.saved is None or record.checkpoint_id in self._checkpoints:
            self._runs[record.run_id] = record
            self._runs.move_to_end(record.run_id)
            while len(self._runs) > RUNS:
                self._runs.popitem(last=False)
        return record

    def forget_run(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
