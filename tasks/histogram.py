"""Prometheus-style histograms kept as Redis hash fields: one count per bucket.

Each writer adds 1 to the field of the bucket a value falls in (named by its upper
bound, or ``+Inf``); a reader turns the counts back into the cumulative series
Prometheus expects. The task runtimes, the schedules' fire lags and the workflows'
step counts are all kept so, each with its own bounds.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

INF = "+Inf"


def bucket_of(bounds: Sequence[float], value: float) -> str:
    """The bucket ``value`` falls in: the first upper bound not below it, else +Inf."""
    index = bisect.bisect_left(bounds, value)
    return str(bounds[index]) if index < len(bounds) else INF


def cumulative(bounds: Sequence[float], counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Per-bucket counts as Prometheus's cumulative series, ending with +Inf (the total)."""
    running, series = 0, []
    for bound in [*map(str, bounds), INF]:
        running += counts.get(bound, 0)
        series.append((bound, running))
    return series
