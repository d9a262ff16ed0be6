"""Runtime histograms are stored per bucket and reported cumulatively."""

from __future__ import annotations

from tasks.histogram import INF, bucket_of
from tasks.metrics import RUNTIME_BUCKETS_S, Runtime


def test_cumulative_buckets_end_with_the_total_count() -> None:
    runtime = Runtime(buckets={"0.005": 2, "1.0": 1, INF: 1}, total_s=400.0)
    cumulative = dict(runtime.cumulative())
    assert cumulative["0.005"] == 2
    assert cumulative["0.5"] == 2
    assert cumulative["1.0"] == 3
    assert cumulative[INF] == 4
    assert len(cumulative) == len(RUNTIME_BUCKETS_S) + 1


def test_a_value_falls_in_the_first_bucket_whose_bound_is_not_below_it() -> None:
    bounds = (1, 5, 10)
    assert [bucket_of(bounds, value) for value in (0, 1, 1.5, 10, 11)] == [
        "1",
        "1",
        "5",
        "10",
        INF,
    ]
