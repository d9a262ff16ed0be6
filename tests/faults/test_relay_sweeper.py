"""A channel message the broker lost is relayed by the sweeper with the bounds it was
published under (retention in messages and bytes, idle expiry, recent index), not the defaults.
"""

from __future__ import annotations

import time

import redis

from tasks import channels, keys
from tasks.celery_ext import relay_sweeper
from tasks.channels import log as channel_log

# Each stranded message is small next to the defaults, so a default in its place shows.
RETENTION = 2
IDLE_TTL_S = 120
RECENT = 3
ENVELOPE_BYTES = 1_000  # about: the data below plus the envelope's fields


def strand(
    client: redis.Redis, channel: str, data: object, retention: int = RETENTION, **bounds: int
) -> str:
    """Record a message as accepted a minute ago whose relay task the broker lost."""
    pending = channel_log.Pending(
        channel=channel,
        message_id=channels.new_message_id(),
        data=data,
        published_at="2030-01-01T00:00:00+00:00",
        retention=retention,
        **bounds,
    )
    channel_log.remember_pending(client, pending, time.time() - 60)
    return pending.message_id


def test_the_sweeper_relays_a_lost_message_under_the_bounds_it_was_published_with(
    fault_redis_client: redis.Redis,
) -> None:
    by_count, by_bytes = "swept.count", "swept.bytes"
    for n in range(4):
        strand(fault_redis_client, by_count, n, idle_ttl_s=IDLE_TTL_S, recent=RECENT)
        # Room for two of these by bytes, for four by count.
        strand(
            fault_redis_client,
            by_bytes,
            "x" * ENVELOPE_BYTES,
            retention=10,
            retention_bytes=ENVELOPE_BYTES * 5 // 2,
            recent=RECENT,
        )

    assert relay_sweeper.sweep(fault_redis_client, older_than_s=30) == 8

    assert fault_redis_client.xlen(keys.channel_stream(by_count)) == RETENTION
    assert fault_redis_client.xlen(keys.channel_stream(by_bytes)) == 2
    for key in (keys.channel_stream(by_count), keys.channel_positions(by_count)):
        assert 0 < fault_redis_client.ttl(key) <= IDLE_TTL_S, key
    assert fault_redis_client.xlen(keys.CHANNEL_RECENT) == RECENT
    assert fault_redis_client.zcard(keys.RELAY_PENDING_INDEX) == 0
