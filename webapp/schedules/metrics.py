"""The schedules' part of GET /metrics: fires, misfires, refused claims, lag, who is active."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from tasks.schedules import lease, metrics

_HELP = {
    metrics.FIRED: "Schedule slots fired",
    metrics.MANUAL: "Schedule runs asked for by hand",
    metrics.MISSED: "Schedule slots not fired: they fell while no scheduler ran, past the grace",
    metrics.REFUSED: "Fires refused because another scheduler had claimed the slot",
    metrics.TAKEOVERS: "Times a scheduler became the active one",
}
# A scheduler counts as alive while it beat within this many seconds (it beats every 2 s).
ALIVE_WITHIN_S = 15.0


def collect(client: Any) -> Iterator[Metric]:
    snapshot = metrics.read(client)
    for event, help_text in _HELP.items():
        yield CounterMetricFamily(
            f"taskrelay_schedule_{event}", help_text, value=snapshot.counts.get(event, 0)
        )
    yield HistogramMetricFamily(
        "taskrelay_schedule_fire_lag_seconds",
        "When a slot was fired, after its time",
        buckets=snapshot.lag_cumulative(),
        sum_value=snapshot.lag_sum_s,
    )
    active = GaugeMetricFamily(
        "taskrelay_scheduler_active", "The scheduler holding the lease", labels=["scheduler"]
    )
    holder = lease.holder(client)
    if holder is not None:
        active.add_metric([holder], 1)
    yield active
    yield GaugeMetricFamily(
        "taskrelay_schedulers",
        f"Schedulers (active or standing by) that beat within {ALIVE_WITHIN_S:g} s",
        value=len(lease.alive(client, ALIVE_WITHIN_S)),
    )
