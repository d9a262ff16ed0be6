"""Which scheduler is active: a lease in Redis that one holder renews, and every scheduler's beat.

The lease is a key holding its holder's id with a time to live. The active scheduler
renews it every third of that time; a standby takes it with ``SET NX`` once it has
expired. Renewing and releasing check the holder in one script, so a scheduler that
lost the lease (paused, cut off) can never extend or delete another's. The lease
only decides who does the work: a slot is fired exactly once because of its claim
(tasks/schedules/fire.py), even while two schedulers both believe they are active.
"""

from __future__ import annotations

import time

import redis

from tasks import keys
from tasks.text import as_text

# KEYS[1] the lease; ARGV[1] the holder, ARGV[2] the lease's time to live in ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
# A scheduler that has not beaten for this long is gone from the beacon, in seconds.
BEACON_FORGET_S = 60.0


def acquire(client: redis.Redis, holder: str, ttl_s: float) -> bool:
    """Take the lease if nobody holds it."""
    return bool(client.set(keys.SCHEDULER_LEASE, holder, nx=True, px=_ms(ttl_s)))


def renew(client: redis.Redis, holder: str, ttl_s: float) -> bool:
    """Extend the lease; False if `holder` no longer has it."""
    return bool(client.eval(_RENEW, 1, keys.SCHEDULER_LEASE, holder, _ms(ttl_s)))


def release(client: redis.Redis, holder: str) -> bool:
    """Give the lease up (on a graceful stop) so that a standby takes over at once."""
    return bool(client.eval(_RELEASE, 1, keys.SCHEDULER_LEASE, holder))


def holder(client: redis.Redis) -> str | None:
    """The active scheduler's id, or None while no scheduler holds the lease."""
    raw = client.get(keys.SCHEDULER_LEASE)
    return None if raw is None else as_text(raw)


def beat(client: redis.Redis, scheduler_id: str, now_s: float | None = None) -> None:
    """Say this scheduler is alive (active or standby), and forget the long silent."""
    now_s = time.time() if now_s is None else now_s
    with client.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.SCHEDULER_BEACON, {scheduler_id: now_s})
        pipe.zremrangebyscore(keys.SCHEDULER_BEACON, 0, now_s - BEACON_FORGET_S)
        pipe.execute()


def forget(client: redis.Redis, scheduler_id: str) -> None:
    client.zrem(keys.SCHEDULER_BEACON, scheduler_id)


def alive(client: redis.Redis, within_s: float, now_s: float | None = None) -> list[str]:
    """Schedulers that beat within the last `within_s` seconds."""
    now_s = time.time() if now_s is None else now_s
    raw = client.zrangebyscore(keys.SCHEDULER_BEACON, now_s - within_s, "+inf")
    return [as_text(member) for member in raw]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
