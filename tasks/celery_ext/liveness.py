"""A worker bootstep that tells Redis, every few seconds, which queues it consumes.

Readiness (GET /readyz) looks for these marks: a queue with no fresh mark has no
worker, or only workers whose event loop is stuck.

The beacon is a consumer step that starts after the task consumer: a worker
still connecting, mingling or reconnecting after a broker outage does not take
tasks yet, so it must not say that it does.
"""

from __future__ import annotations

import time
from typing import Any

from tasks import keys
from tasks.celery_ext.repeating import RepeatingStep
from tasks.connections import shared_client
from tasks.text import as_text

BEACON_INTERVAL_S = 5.0
# A mark outlives a few missed beats before the worker counts as gone.
BEACON_TTL_S = 15


def live_consumers(client: Any, queue: str) -> list[str]:
    """Workers that beat for this queue within the last BEACON_TTL_S seconds."""
    since = time.time() - BEACON_TTL_S
    return [
        as_text(name) for name in client.zrangebyscore(keys.queue_consumers(queue), since, "+inf")
    ]


class LivenessBeacon(RepeatingStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}
    failure_message = "liveness beacon could not reach Redis"

    def interval_s(self, consumer: Any) -> float | None:
        return BEACON_INTERVAL_S

    def start(self, consumer: Any) -> None:
        self.run(consumer)  # ready at once, not one interval later
        super().start(consumer)

    def run_once(self, consumer: Any) -> None:
        queues = list(consumer.app.amqp.queues.consume_from or consumer.app.amqp.queues)
        client = shared_client(consumer.app.conf.taskrelay_redis_url)
        now = time.time()
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zadd(keys.queue_consumers(queue), {consumer.hostname: now})
                pipe.zremrangebyscore(keys.queue_consumers(queue), 0, now - BEACON_TTL_S)
            pipe.execute()
