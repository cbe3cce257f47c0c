"""The soak's short form (bench/soak.py): runs under every kind of fault, in turn, on a cluster
of real processes and a real redis-server; each run ends with its fan-out applied once."""

from __future__ import annotations

from bench.soak import FAULTS, soak


async def test_runs_under_random_faults_end_right_none_lost_or_doubled() -> None:
    report = await soak(runs=40, seconds=60, seed=29, fault_every=(0.3, 0.6))
    assert (report["right"], report["lost"], report["doubled"]) == (40, 0, 0), report
    assert set(report["faults"]) == set(FAULTS), report  # every kind of fault happened
