"""The relay task: append a channel message to its stream and publish it, once.

It runs only on the ``relay`` queue (celeryconfig routes ``taskrelay.relay.*``
there), so a backlog of slow work never delays pub/sub delivery. The message id
was given by the web; a redelivered task finds the message already relayed and
publishes nothing.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import shared_task

from tasks import channels
from tasks.channels import bounds
from tasks.channels import log as channel_log
from tasks.connections import shared_client

RELAY_TASK_NAME = "taskrelay.relay.publish"
# Redis unreachable even after the client's own retries: try again later, with
# backoff, for a few minutes; the broker holds the message meanwhile.
RELAY_MAX_RETRIES = 20
RELAY_BACKOFF_MAX_S = 30


@shared_task(  # type: ignore[untyped-decorator]
    bind=True,
    name=RELAY_TASK_NAME,
    ignore_result=True,
    autoretry_for=(redis.ConnectionError, redis.TimeoutError),
    retry_backoff=True,
    retry_backoff_max=RELAY_BACKOFF_MAX_S,
    max_retries=RELAY_MAX_RETRIES,
)
def publish(
    self: Any,
    channel: str,
    message_id: str,
    data: Any,
    published_at: str,
    retention: int,
    retention_bytes: int = bounds.DEFAULT_RETENTION_BYTES,
    idle_ttl_s: int = bounds.DEFAULT_IDLE_TTL_S,
    recent: int = bounds.DEFAULT_RECENT_MESSAGES,
) -> dict[str, Any]:
    """Relay one message, kept as the web's bounds (sent with it) say."""
    channels.check_name(channel)
    channels.check_message_id(message_id, field="message_id")
    envelope_json = channels.envelope(message_id, channel, data, str(published_at))
    client = shared_client(self.app.conf.taskrelay_redis_url)
    appended = channel_log.append_and_publish(
        client,
        channel,
        message_id,
        envelope_json,
        retention=max(1, int(retention)),
        retention_bytes=max(1, int(retention_bytes)),
        idle_ttl_s=max(1, int(idle_ttl_s)),
        recent=max(1, int(recent)),
    )
    return {"position": appended.position, "published": appended.published}
