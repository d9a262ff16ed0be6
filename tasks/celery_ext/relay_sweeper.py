"""A relay-worker bootstep that relays channel messages the broker lost.

kombu's Redis transport pops a message and records it as unacknowledged in two
steps; a worker killed between them loses the message. The web records every
channel message as pending before it sends the relay task, the relay script
clears it, and this sweeper relays whatever stays pending too long, oldest
first. Relaying twice is harmless: the script publishes a message only once.

A Sentinel promotion loses messages the same way without killing anything: the
relay task appends on the old primary (its client has not moved yet, and the old
primary takes writes until Sentinel demotes it) while its acknowledgement reaches
the new one, which keeps the message pending and nothing to relay it. So once the
sweeper sees the sentinels name another primary, and every client of the worker
has had time to follow, it relays everything pending at once instead of waiting
for it to be overdue.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from tasks import channels
from tasks.celery_ext.repeating import RepeatingStep
from tasks.channels import log as channel_log
from tasks.connections import PRIMARY_RECHECK_S, primary_address, shared_client
from tasks.queues import RELAY_QUEUE

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 2.0
# A message still pending this long after it was accepted is relayed by the
# sweeper. Long enough that a busy relay queue is not overtaken in normal work.
DEFAULT_SWEEP_AFTER_S = 60.0
SWEEP_BATCH = 500
# After a promotion, the catch-up waits until every client of the worker has asked
# the sentinels again (each does within PRIMARY_RECHECK_S), so that no relay task
# can append on the old primary after it.
CATCH_UP_DELAY_S = 2 * PRIMARY_RECHECK_S


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


class PromotionWatch:
    """Notices that the sentinels name another primary, and says when to catch up."""

    def __init__(self) -> None:
        self.primary: tuple[str, int] | None = None
        self.catch_up_at: float | None = None

    def observe(self, primary: tuple[str, int] | None, now: float) -> None:
        if primary is None:  # not Sentinel's, or no sentinel answered: nothing learnt
            return
        if self.primary is not None and primary != self.primary:
            self.catch_up_at = now + CATCH_UP_DELAY_S
        self.primary = primary

    def catch_up_due(self, now: float) -> bool:
        """True once per promotion, when its catch-up is due."""
        if self.catch_up_at is None or now < self.catch_up_at:
            return False
        self.catch_up_at = None
        return True


class RelaySweeper(RepeatingStep):
    requires = {"celery.worker.components:Timer"}
    failure_message = "relay sweeper could not reach Redis"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.sweep_after_s = float(
            os.environ.get("TASKRELAY_RELAY_SWEEP_AFTER_S", DEFAULT_SWEEP_AFTER_S)
        )
        self.promotions = PromotionWatch()

    def interval_s(self, worker: Any) -> float | None:
        queues = set(worker.app.amqp.queues.consume_from or worker.app.amqp.queues)
        return SWEEP_INTERVAL_S if RELAY_QUEUE in queues else None

    def start(self, worker: Any) -> None:
        if self.interval_s(worker) is not None:
            # The primary at start-up, so that a promotion before the first run counts.
            client = shared_client(worker.app.conf.taskrelay_redis_url)
            self.promotions.observe(primary_address(client.connection_pool), time.monotonic())
        super().start(worker)

    def run_once(self, worker: Any) -> None:
        client = shared_client(worker.app.conf.taskrelay_redis_url)
        now = time.monotonic()
        self.promotions.observe(primary_address(client.connection_pool), now)
        if self.promotions.catch_up_due(now):
            relayed = sweep(client, older_than_s=0.0)
            logger.warning("relayed %d channel message(s) pending across a promotion", relayed)
            return
        relayed = sweep(client, self.sweep_after_s)
        if relayed:
            logger.warning("relayed %d channel message(s) the broker had lost", relayed)
