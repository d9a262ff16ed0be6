"""Percentiles from the per-minute histograms, and the window's buckets."""

from __future__ import annotations

from tasks import task_stats


def test_percentiles_interpolate_within_the_bucket_they_fall_in() -> None:
    # 100 samples: 50 up to 10 ms, 50 between 10 and 25 ms.
    figures = task_stats.percentiles_ms({"0.01": 50, "0.025": 50})
    assert figures["p50"] == 10.0
    assert figures["p95"] == 23.5
    assert figures["p99"] == 24.7


def test_samples_past_the_last_bound_report_that_bound() -> None:
    assert task_stats.percentiles_ms({"+Inf": 3})["p99"] == 300_000.0


def test_no_samples_have_no_percentiles() -> None:
    assert task_stats.percentiles_ms({}) == {"p50": None, "p95": None, "p99": None}


def test_a_window_is_whole_minutes_ending_with_the_current_one() -> None:
    starts = task_stats.bucket_starts(now_s=3_600 * 10 + 125.5, window_s=300)
    assert starts == [36_000 - 120 + 60 * i for i in range(5)]
    assert task_stats.bucket_starts(now_s=120.0, window_s=90) == [60, 120]
