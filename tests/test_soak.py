"""The soak's short form (bench/soak.py): runs under every kind of fault, in turn, on a cluster
of real processes and a real redis-server (and, through Sentinel, its replica and a sentinel,
Redis failed over instead of restarted); each run ends with its fan-out applied once."""

from __future__ import annotations

import pytest

from bench.soak import FAULTS, SENTINEL_FAULTS, soak


@pytest.mark.parametrize("sentinel", [False, True], ids=["restarts", "failovers"])
async def test_runs_under_random_faults_end_right_none_lost_or_doubled(sentinel: bool) -> None:
    report = await soak(runs=40, seconds=60, seed=29, fault_every=(0.3, 0.6), sentinel=sentinel,
                        lease=2.0)
    assert (report["right"], report["lost"], report["doubled"]) == (40, 0, 0), report
    kinds = SENTINEL_FAULTS if sentinel else FAULTS
    assert set(report["faults"]) == set(kinds), report  # every kind of fault happened
