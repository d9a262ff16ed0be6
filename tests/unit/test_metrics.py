"""Runtime histograms are stored per bucket and reported cumulatively."""

from __future__ import annotations

from tasks.metrics import INF, RUNTIME_BUCKETS_S, Runtime


def test_cumulative_buckets_end_with_the_total_count() -> None:
    runtime = Runtime(buckets={"0.005": 2, "1.0": 1, INF: 1}, total_s=400.0)
    cumulative = dict(runtime.cumulative())
    assert cumulative["0.005"] == 2
    assert cumulative["0.5"] == 2
    assert cumulative["1.0"] == 3
    assert cumulative[INF] == 4
    assert len(cumulative) == len(RUNTIME_BUCKETS_S) + 1
