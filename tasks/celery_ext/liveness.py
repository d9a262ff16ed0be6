"""A worker bootstep that tells Redis, every few seconds, which queues it consumes.

Readiness (GET /readyz) looks for these marks: a queue with no fresh mark has no
worker, or only workers whose event loop is stuck. The same beat leaves the
worker's beacon (its queues, the tasks it is running, when it beat), which
GET /api/workers lists; a worker that shuts down says so in a last beacon.

The beacon is a consumer step that starts after the task consumer: a worker
still connecting, mingling or reconnecting after a broker outage does not take
tasks yet, so it must not say that it does.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from celery.worker import state as worker_state

from tasks import keys
from tasks.celery_ext.repeating import RepeatingStep
from tasks.connections import shared_client
from tasks.text import as_text

logger = logging.getLogger(__name__)

BEACON_INTERVAL_S = 5.0
# A mark outlives a few missed beats before the worker counts as gone.
BEACON_TTL_S = 15
# A worker that stopped beating is listed (as not alive) this long, then forgotten.
WORKER_FORGET_AFTER_S = 3_600


def live_consumers(client: Any, queue: str) -> list[str]:
    """Workers that beat for this queue within the last BEACON_TTL_S seconds."""
    since = time.time() - BEACON_TTL_S
    return [
        as_text(name) for name in client.zrangebyscore(keys.queue_consumers(queue), since, "+inf")
    ]


def workers(client: Any, now_s: float) -> list[dict[str, Any]]:
    """Every worker that beat within WORKER_FORGET_AFTER_S, newest beat first."""
    names = [
        as_text(name)
        for name in client.zrevrangebyscore(keys.WORKERS, "+inf", now_s - WORKER_FORGET_AFTER_S)
    ]
    raws = client.mget([keys.worker(n) for n in names]) if names else []
    found = []
    for name, raw in zip(names, raws, strict=True):
        beacon = _json_object(raw)
        if beacon is None:
            continue
        last_beat = float(beacon.get("last_beat_s") or 0)
        queues = beacon.get("queues")
        running = beacon.get("running")
        found.append(
            {
                "name": name,
                "queues": [str(q) for q in queues] if isinstance(queues, list) else [],
                "running": running if isinstance(running, int) else 0,
                "last_beat": datetime.fromtimestamp(last_beat, UTC).isoformat(),
                "alive": not beacon.get("stopped") and now_s - last_beat <= BEACON_TTL_S,
            }
        )
    return found


def _json_object(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


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
            _queue_beacon(pipe, consumer.hostname, queues, now, stopped=False)
            pipe.execute()

    def shutdown(self, consumer: Any) -> None:
        super().shutdown(consumer)
        # A last beacon, so that a worker shut down is listed as not alive at once.
        try:
            queues = list(consumer.app.amqp.queues.consume_from or consumer.app.amqp.queues)
            client = shared_client(consumer.app.conf.taskrelay_redis_url)
            with client.pipeline(transaction=False) as pipe:
                _queue_beacon(pipe, consumer.hostname, queues, time.time(), stopped=True)
                pipe.execute()
        except Exception:
            logger.warning("could not leave the last liveness beacon", exc_info=True)


def _queue_beacon(
    pipe: Any, hostname: str, queues: list[str], now: float, *, stopped: bool
) -> None:
    beacon = {
        "queues": queues,
        "running": len(worker_state.active_requests),
        "last_beat_s": now,
        "stopped": stopped,
    }
    pipe.zadd(keys.WORKERS, {hostname: now})
    pipe.zremrangebyscore(keys.WORKERS, 0, now - WORKER_FORGET_AFTER_S)
    pipe.set(keys.worker(hostname), json.dumps(beacon), ex=WORKER_FORGET_AFTER_S)
