"""Per-minute task figures over a window: throughput and wait/run time percentiles per
task name, read from the buckets the task index's steps keep (one hash per minute,
tasks/task_index.py), never from the records.

A bucket's fields are "<name>|succeeded", "<name>|failed", and histogram counts
"<name>|wait|<bound>" and "<name>|run|<bound>" over metrics.RUNTIME_BUCKETS_S.
Percentiles are interpolated within a histogram bucket, as Prometheus does.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tasks import defaults, keys, metrics
from tasks.histogram import INF
from tasks.text import as_text

PERCENTILES = (50, 95, 99)
WAIT = "wait"
RUN = "run"


@dataclass
class TaskFigures:
    succeeded: list[int]
    failed: list[int]
    histograms: dict[str, dict[str, int]] = field(
        default_factory=lambda: {WAIT: defaultdict(int), RUN: defaultdict(int)}
    )


def bucket_starts(now_s: float, window_s: int) -> list[int]:
    """The minute buckets of the window ending now, oldest first (the current one last)."""
    step = defaults.TASK_STATS_BUCKET_S
    current = int(now_s // step) * step
    count = max(1, -(-window_s // step))
    return [current - step * i for i in reversed(range(count))]


def read(client: Any, now_s: float, window_s: int) -> dict[str, Any]:
    """The stats document of GET /api/tasks/stats."""
    starts = bucket_starts(now_s, window_s)
    with client.pipeline(transaction=False) as pipe:
        for start in starts:
            pipe.hgetall(keys.task_stats(start))
        buckets = pipe.execute()
    figures: dict[str, TaskFigures] = {}
    for index, raw in enumerate(buckets):
        for raw_field, raw_value in raw.items():
            _add(figures, len(starts), index, as_text(raw_field), int(raw_value))
    return {
        "window_s": window_s,
        "bucket_s": defaults.TASK_STATS_BUCKET_S,
        "tasks": {name: _document(starts, f) for name, f in sorted(figures.items())},
    }


def _add(figures: dict[str, TaskFigures], size: int, index: int, name: str, value: int) -> None:
    task, _, rest = name.partition("|")
    found = figures.get(task)
    if found is None:
        found = figures[task] = TaskFigures(succeeded=[0] * size, failed=[0] * size)
    kind, _, bound = rest.partition("|")
    if kind == metrics.SUCCEEDED:
        found.succeeded[index] += value
    elif kind == metrics.FAILED:
        found.failed[index] += value
    elif kind in (WAIT, RUN) and bound:
        found.histograms[kind][bound] += value


def _document(starts: list[int], figures: TaskFigures) -> dict[str, Any]:
    return {
        "throughput": [
            {
                "at": datetime.fromtimestamp(start, UTC).isoformat(),
                "succeeded": succeeded,
                "failed": failed,
            }
            for start, succeeded, failed in zip(
                starts, figures.succeeded, figures.failed, strict=True
            )
        ],
        "wait_ms": percentiles_ms(figures.histograms[WAIT]),
        "run_ms": percentiles_ms(figures.histograms[RUN]),
    }


def percentiles_ms(histogram: dict[str, int]) -> dict[str, float | None]:
    """p50, p95 and p99 in ms, interpolated within the bucket each falls in."""
    bounds = [*metrics.RUNTIME_BUCKETS_S, float("inf")]
    counts = [histogram.get(str(b), 0) for b in metrics.RUNTIME_BUCKETS_S]
    counts.append(histogram.get(INF, 0))
    total = sum(counts)
    out: dict[str, float | None] = {}
    for p in PERCENTILES:
        out[f"p{p}"] = None if total == 0 else round(_quantile(bounds, counts, total, p) * 1000, 3)
    return out


def _quantile(bounds: list[float], counts: list[int], total: int, p: int) -> float:
    rank = total * p / 100
    below, lower = 0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count and below + count >= rank:
            if bound == float("inf"):
                return lower  # past the last bound: its value is all that is known
            return lower + (bound - lower) * (rank - below) / count
        below += count
        lower = bound if bound != float("inf") else lower
    return lower
