"""Lease renewal: a live worker keeps the messages it holds from being redelivered.

On the Redis transport every delivered, unacknowledged message has a record in the
``unacked_index`` sorted set, scored by delivery time, and any worker puts a message
whose score is older than the visibility timeout back on its queue. That timeout is
short here, so that the tasks of a worker that died (SIGKILL, lost host) run again
within a bound. A worker that is alive must not lose its long tasks or its countdown
messages that way, so every few seconds this consumer step re-scores the messages it
holds. Only scores that exist are touched (``ZADD XX``), so a message acknowledged in
between is never brought back.

Which messages the worker holds is kombu's private state, read through
``kombu_internals.held_delivery_tags``: if kombu changes it, the step fails when the
worker starts, not silently later.
"""

from __future__ import annotations

import time
from typing import Any

from tasks import redis_urls
from tasks.celery_ext.kombu_internals import held_delivery_tags
from tasks.celery_ext.repeating import RepeatingStep
from tasks.connections import shared_client


def renew(client: Any, index_key: str, delivery_tags: list[str], now: float) -> None:
    if delivery_tags:
        client.zadd(index_key, dict.fromkeys(delivery_tags, now), xx=True)


class LeaseRenewal(RepeatingStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}
    # The next run comes well before the visibility timeout runs out.
    failure_message = "could not renew message leases"

    def interval_s(self, consumer: Any) -> float | None:
        conf = consumer.app.conf
        if not redis_urls.is_direct_redis(conf.broker_url):
            return None  # other brokers acknowledge natively; there is nothing to renew
        return float(conf.lease_renewal_interval_s)

    def start(self, consumer: Any) -> None:
        if self.interval_s(consumer) is not None:
            # Raises KombuInternalsChanged now, at start-up, if kombu moved its state.
            held_delivery_tags(consumer.task_consumer.channel.qos)
        super().start(consumer)

    def run_once(self, consumer: Any) -> None:
        qos = consumer.task_consumer.channel.qos
        renew(
            shared_client(consumer.app.conf.broker_url),
            qos.unacked_index_key,
            held_delivery_tags(qos),
            time.time(),
        )
