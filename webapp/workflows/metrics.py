"""The workflow figures of GET /metrics: workflows by state, and their step counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from tasks.workflows import metrics, state


def collect(client: Any) -> Iterator[Metric]:
    """Read from Redis at scrape time, for the whole cluster."""
    snapshot = metrics.read(client)
    submitted = snapshot.counts.get(metrics.SUBMITTED, 0)
    yield CounterMetricFamily(
        "taskrelay_workflows_submitted", "Workflows accepted by the API", value=submitted
    )
    ended = CounterMetricFamily(
        "taskrelay_workflows_ended", "Workflows that ended, by outcome", labels=["state"]
    )
    for outcome in state.OUTCOMES:
        ended.add_metric([outcome], snapshot.counts.get(outcome, 0))
    yield ended
    yield GaugeMetricFamily(
        "taskrelay_workflows_unfinished",
        "Workflows accepted and not ended (QUEUED or RUNNING)",
        value=max(0, submitted - sum(snapshot.counts.get(o, 0) for o in state.OUTCOMES)),
    )
    steps = HistogramMetricFamily("taskrelay_workflow_steps", "Task steps per accepted workflow")
    steps.add_metric([], snapshot.cumulative_steps(), snapshot.steps_total)
    yield steps
