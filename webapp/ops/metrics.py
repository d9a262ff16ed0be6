"""GET /metrics: Prometheus text for the whole cluster's tasks and this process's streams."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tasks import metrics, role_restarts
from webapp.channels import metrics as channel_metrics
from webapp.ops.queues import queue_depths
from webapp.schedules import metrics as schedule_metrics
from webapp.services import Services, services
from webapp.workflows import metrics as workflow_metrics

bp = Blueprint("metrics", __name__)

_EVENT_HELP = {
    metrics.SUBMITTED: "Tasks accepted by the API",
    metrics.SUCCEEDED: "Tasks that ended in SUCCESS",
    metrics.FAILED: "Tasks that ended in FAILURE",
    metrics.RETRIED: "Task attempts that asked for a retry",
    metrics.REVOKED: "Tasks revoked before or while running",
}


class ClusterCollector(Collector):
    """Reads the cluster-wide figures from Redis at scrape time."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        snapshot = metrics.read(self.svc.redis)
        for event, help_text in _EVENT_HELP.items():
            family = CounterMetricFamily(f"taskrelay_tasks_{event}", help_text, labels=["task"])
            for (task, counted), value in sorted(snapshot.events.items()):
                if counted == event:
                    family.add_metric([task], value)
            yield family
        runtime = HistogramMetricFamily(
            "taskrelay_task_runtime_seconds", "Time from a task's start to its end", labels=["task"]
        )
        for task, histogram in sorted(snapshot.runtimes.items()):
            runtime.add_metric([task], histogram.cumulative(), histogram.total_s)
        yield runtime
        depth = GaugeMetricFamily(
            "taskrelay_queue_depth", "Messages waiting in a queue", labels=["queue"]
        )
        for queue, waiting in queue_depths(self.svc.redis).items():
            depth.add_metric([queue], waiting)
        yield depth
        restarts = CounterMetricFamily(
            "taskrelay_role_restarts",
            "Restarts of a role by the supervisor of `taskrelay up`, since it started",
            labels=["role"],
        )
        for role, count in role_restarts.read(self.svc.redis).items():
            restarts.add_metric([role], count)
        yield restarts
        yield from self.collect_channels()
        yield from schedule_metrics.collect(self.svc.redis)
        yield from workflow_metrics.collect(self.svc.redis)

    def collect_channels(self) -> Iterator[Metric]:
        figures = channel_metrics.cluster(self.svc.redis)
        counters = {
            "published": "Messages relayed on a channel (once each)",
            "delivered": "Messages written to SSE clients",
            "dropped": "Messages not delivered live because a client's buffer was full",
        }
        for name, help_text in counters.items():
            family = CounterMetricFamily(f"taskrelay_channel_{name}", help_text, labels=["channel"])
            for channel, counts in figures.items():
                value = getattr(counts, name)
                if value:
                    family.add_metric([channel], value)
            yield family
        subscribers = GaugeMetricFamily(
            "taskrelay_channel_subscribers",
            "SSE clients hearing a channel (or a pattern:<text>)",
            labels=["channel"],
        )
        for channel, counts in figures.items():
            if counts.subscribers:
                subscribers.add_metric([channel], counts.subscribers)
        yield subscribers
        yield GaugeMetricFamily(
            "taskrelay_sse_clients",
            "Channel SSE clients of every live web process",
            value=sum(counts.subscribers for counts in figures.values()),
        )


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(services()))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
