"""Which channels exist: admitting a new name under the cap, expiring idle ones, pages of names.

Two sorted sets hold the index: every name at score 0, read in name order a page at
a time, and every name by when it expires (its last publish plus its idle time to
live), which says which channels went idle. A channel leaves both once that time
has passed (its keys expire by themselves then), taking its counters with it; any
script that writes the index first removes a few such channels, so the index
never waits for a sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from tasks import keys
from tasks.text import as_text

if TYPE_CHECKING:
    # Only for the annotation: the log's append script uses this module's PRUNE_LUA.
    from tasks.channels.log import Pending

# Idle channels removed from the index by each append, and by an admission that
# finds the cap reached: small per append, enough at the cap to make room.
PRUNE_PER_APPEND = 10
PRUNE_AT_CAP = 200

# A Lua function shared by the scripts that write the index: remove up to `limit`
# channels expired by `now` (seconds) from both sets and from the counters.
# KEYS it takes: names, expiry, published, delivered, dropped counters.
PRUNE_LUA = """
local function prune(names, expiry, published, delivered, dropped, now, limit)
  local idle = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, limit)
  for _, name in ipairs(idle) do
    redis.call('ZREM', names, name)
    redis.call('ZREM', expiry, name)
    redis.call('HDEL', published, name)
    redis.call('HDEL', delivered, name)
    redis.call('HDEL', dropped, name)
  end
  return #idle
end
"""

# KEYS: names, expiry, published, delivered, dropped, pending, pending index.
# ARGV: name, now (s), idle TTL (s), most channels, prune limit, message id, pending JSON.
# Returns when the name expires (seconds, as text) once the message is recorded as
# pending; 0 when the cap refuses a new name.
_ADMIT_AND_REMEMBER = (
    PRUNE_LUA
    + """
local now = tonumber(ARGV[2])
local expires = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not expires then
  local most = tonumber(ARGV[4])
  if redis.call('ZCARD', KEYS[2]) >= most then
    prune(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], now, ARGV[5])
    if redis.call('ZCARD', KEYS[2]) >= most then
      return 0
    end
  end
  expires = tostring(now + tonumber(ARGV[3]))
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
  redis.call('ZADD', KEYS[2], expires, ARGV[1])
end
redis.call('HSET', KEYS[6], ARGV[6], ARGV[7])
redis.call('ZADD', KEYS[7], now, ARGV[6])
return expires
"""
)


def prune_keys() -> list[str]:
    """The KEYS, in order, that PRUNE_LUA's function takes."""
    return [
        keys.CHANNEL_NAMES,
        keys.CHANNEL_EXPIRY,
        keys.METRICS_CHANNEL_PUBLISHED,
        keys.METRICS_CHANNEL_DELIVERED,
        keys.METRICS_CHANNEL_DROPPED,
    ]


def admit_and_remember(
    client: redis.Redis, pending: Pending, now_s: float, *, max_channels: int
) -> float | None:
    """Record a message as pending, in one script with the cap on channels; answer
    when its channel's name expires from the index (seconds), or None if refused.

    A name already in the index is always taken; a new one only while fewer than
    ``max_channels`` channels exist (idle ones are removed first to make room).
    The name enters the index here, so concurrent new names cannot overshoot.
    A name leaves the index only once its expiry has passed, and each relayed
    message moves that later (webapp/channels/admitted.py relies on both).
    """
    script = client.register_script(_ADMIT_AND_REMEMBER)
    expires = script(
        keys=[*prune_keys(), keys.RELAY_PENDING, keys.RELAY_PENDING_INDEX],
        args=[
            pending.channel,
            now_s,
            pending.idle_ttl_s,
            max_channels,
            PRUNE_AT_CAP,
            pending.message_id,
            pending.to_json(),
        ],
    )
    return None if expires == 0 else float(as_text(expires))


@dataclass(frozen=True)
class Page:
    names: list[str]
    next_cursor: str | None  # the name to pass as `cursor` for the next page


def page(client: redis.Redis, *, after: str | None, limit: int, now_s: float) -> Page:
    """Up to ``limit`` live channel names after ``after``, in name order.

    Channels expired but not yet removed are left out, so a page may hold fewer
    names than ``limit`` while more follow.
    """
    start = "-" if after is None else "(" + after
    raw = client.zrangebylex(keys.CHANNEL_NAMES, start, "+", start=0, num=limit + 1)
    names = [as_text(name) for name in raw]
    more = len(names) > limit
    names = names[:limit]
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.zscore(keys.CHANNEL_EXPIRY, name)
        expiries = pipe.execute()
    live = [
        name
        for name, expires in zip(names, expiries, strict=True)
        if expires is not None and expires > now_s
    ]
    return Page(names=live, next_cursor=names[-1] if more else None)
