"""A relay-worker bootstep that relays channel messages the broker lost.

kombu's Redis transport pops a message and records it as unacknowledged in two
steps; a worker killed between them loses the message. The web records every
channel message as pending before it sends the relay task, the relay script
clears it, and this sweeper relays whatever stays pending too long, oldest
first. Relaying twice is harmless: the script publishes a message only once.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from tasks import channels
from tasks.celery_ext.repeating import RepeatingStep
from tasks.channels import log as channel_log
from tasks.connections import shared_client
from tasks.queues import RELAY_QUEUE

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 5.0
# A message still pending this long after it was accepted is relayed by the
# sweeper. Long enough that a busy relay queue is not overtaken in normal work.
DEFAULT_SWEEP_AFTER_S = 60.0
SWEEP_BATCH = 500


def sweep(client: Any, older_than_s: float, limit: int = SWEEP_BATCH) -> int:
    """Relay the messages pending for longer than older_than_s; return how many."""
    overdue = channel_log.overdue(client, time.time() - older_than_s, limit)
    for pending in overdue:
        envelope = channels.envelope(
            pending.message_id, pending.channel, pending.data, pending.published_at
        )
        # Kept as the relay task would have kept it: by the bounds the web sent with it.
        channel_log.append_and_publish(
            client,
            pending.channel,
            pending.message_id,
            envelope,
            retention=pending.retention,
            retention_bytes=pending.retention_bytes,
            idle_ttl_s=pending.idle_ttl_s,
            recent=pending.recent,
        )
    return len(overdue)


class RelaySweeper(RepeatingStep):
    requires = {"celery.worker.components:Timer"}
    failure_message = "relay sweeper could not reach Redis"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.sweep_after_s = float(
            os.environ.get("TASKRELAY_RELAY_SWEEP_AFTER_S", DEFAULT_SWEEP_AFTER_S)
        )

    def interval_s(self, worker: Any) -> float | None:
        queues = set(worker.app.amqp.queues.consume_from or worker.app.amqp.queues)
        return SWEEP_INTERVAL_S if RELAY_QUEUE in queues else None

    def run_once(self, worker: Any) -> None:
        relayed = sweep(shared_client(worker.app.conf.taskrelay_redis_url), self.sweep_after_s)
        if relayed:
            logger.warning("relayed %d channel message(s) the broker had lost", relayed)
