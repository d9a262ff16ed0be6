"""Schedule counters and the fire-lag histogram, kept in one Redis hash for /metrics.

Every scheduler (and the web, for a run asked by hand) adds to one set of figures,
each in the transaction that does what it counts, so a refused or aborted fire
counts nothing it did not do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tasks import histogram, keys
from tasks.text import as_text

FIRED = "fired"  # slots fired by a scheduler
MANUAL = "manual"  # runs asked for by hand (POST /api/schedules/<id>/run)
MISSED = "missed"  # slots not fired: they fell while no scheduler ran, past the grace
REFUSED = "refused"  # fires refused because another scheduler had claimed the slot
TAKEOVERS = "takeovers"  # times a scheduler became the active one
EVENTS = (FIRED, MANUAL, MISSED, REFUSED, TAKEOVERS)

# Upper bounds of the fire-lag histogram's buckets (actual fire time minus slot time), in seconds.
LAG_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LAG = "lag|"
_LAG_SUM = "lag|sum"


def count(pipe: Any, event: str, amount: int = 1) -> None:
    if amount:
        pipe.hincrby(keys.METRICS_SCHEDULES, event, amount)


def lags(pipe: Any, seconds: list[float]) -> None:
    """Add fire lags to the histogram: one command per bucket touched, one for the sum."""
    if not seconds:
        return
    buckets = (histogram.bucket_of(LAG_BUCKETS_S, lag) for lag in seconds)
    for bucket, fires in Counter(buckets).items():
        pipe.hincrby(keys.METRICS_SCHEDULES, _LAG + bucket, fires)
    pipe.hincrbyfloat(keys.METRICS_SCHEDULES, _LAG_SUM, sum(seconds))


@dataclass
class Snapshot:
    counts: dict[str, int] = field(default_factory=dict)
    # Fires per lag bucket (not cumulative), and the sum of the lags.
    lag_buckets: dict[str, int] = field(default_factory=dict)
    lag_sum_s: float = 0.0

    def lag_cumulative(self) -> list[tuple[str, int]]:
        return histogram.cumulative(LAG_BUCKETS_S, self.lag_buckets)


def read(client: Any) -> Snapshot:
    snapshot = Snapshot()
    for raw_name, raw_value in client.hgetall(keys.METRICS_SCHEDULES).items():
        name, value = as_text(raw_name), as_text(raw_value)
        if name == _LAG_SUM:
            snapshot.lag_sum_s = float(value)
        elif name.startswith(_LAG):
            snapshot.lag_buckets[name.removeprefix(_LAG)] = int(value)
        else:
            snapshot.counts[name] = int(value)
    return snapshot
