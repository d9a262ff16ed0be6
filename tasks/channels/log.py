"""A channel's durable log in Redis: appending once and publishing, and reading it back.

Each channel keeps a stream (the retained messages), a hash from message id to
stream position, the bytes the stream holds, and a pub/sub channel. Appending is
one Lua script, so a message is recorded, indexed, trimmed (by count and by
bytes), given the channel's idle expiry, entered in the recent index and
published atomically, exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import redis
from redis.client import Pipeline

from tasks import channels, keys
from tasks.channels import Delivery, Position, bounds, index
from tasks.text import as_text

# How many messages a channel retains by default (tasks/channels/bounds.py).
DEFAULT_RETENTION = bounds.DEFAULT_RETENTION
# Trimming by count runs once the stream is this far over its retention, so that
# its cost (one XRANGE and one HDEL per trimmed message) is paid in batches; the
# recent index is trimmed the same way. Trimming by bytes runs at once.
TRIM_BATCH = 100
# How long a relayed message is remembered, in seconds, so that a relay task
# redelivered after a worker died does not publish it twice. Longer than any
# visibility timeout the broker is configured with.
RELAYED_MARK_TTL_S = 7 * 86_400
# Entries read from a stream per round trip.
READ_BATCH = 500

# KEYS: 1 stream, 2 positions hash, 3 relayed mark, 4 bytes held, 5-9 the keys of
#       index.PRUNE_LUA (names, expiry, published, delivered, dropped counters),
#       10 pending messages, 11 pending index, 12 recent index, 13 recent ids.
# ARGV: 1 message id, 2 envelope JSON, 3 pub/sub channel, 4 retention (messages),
#       5 trim batch, 6 mark TTL (s), 7 name, 8 retention (bytes), 9 idle TTL (s),
#       10 recent index length, 11 recent trim batch, 12 now (s), 13 idle channels
#       to remove from the index.
_APPEND_AND_PUBLISH = (
    index.PRUNE_LUA
    + """
redis.call('HDEL', KEYS[10], ARGV[1])
redis.call('ZREM', KEYS[11], ARGV[1])
local done = redis.call('GET', KEYS[3]) or redis.call('HGET', KEYS[2], ARGV[1])
if done then
  return {done, 0}
end
local position = redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'message', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], position)
redis.call('SET', KEYS[3], position, 'EX', tonumber(ARGV[6]))
local held = redis.call('INCRBY', KEYS[4], string.len(ARGV[2]))
-- The oldest go: past the count in batches, past the bytes at once; never the newest.
local length = redis.call('XLEN', KEYS[1])
local over = length - tonumber(ARGV[4])
if over < tonumber(ARGV[5]) then
  over = 0
end
local most_bytes = tonumber(ARGV[8])
if over > 0 or held > most_bytes then
  local removed, freed, start, going = 0, 0, '-', true
  while going do
    local oldest = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 100)
    if #oldest == 0 then
      break
    end
    for _, entry in ipairs(oldest) do
      if removed >= length - 1 or (removed >= over and held - freed <= most_bytes) then
        going = false
        break
      end
      redis.call('HDEL', KEYS[2], entry[2][2])
      freed = freed + string.len(entry[2][4])
      removed = removed + 1
      start = '(' .. entry[1]
    end
  end
  if removed > 0 then
    redis.call('XTRIM', KEYS[1], 'MAXLEN', length - removed)
    -- Below zero only for a stream older than its count (an upgrade): start over.
    if redis.call('DECRBY', KEYS[4], freed) < 0 then
      redis.call('SET', KEYS[4], 0)
    end
  end
end
local ttl = tonumber(ARGV[9])
local now = tonumber(ARGV[12])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[4], ttl)
prune(KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], now, ARGV[13])
redis.call('ZADD', KEYS[5], 0, ARGV[7])
redis.call('ZADD', KEYS[6], now + ttl, ARGV[7])
local place = redis.call('XADD', KEYS[12], '*', 'c', ARGV[7], 'p', position, 'i', ARGV[1])
redis.call('HSET', KEYS[13], ARGV[1], place)
local recent_over = redis.call('XLEN', KEYS[12]) - tonumber(ARGV[10])
if recent_over >= tonumber(ARGV[11]) then
  local oldest = redis.call('XRANGE', KEYS[12], '-', '+', 'COUNT', recent_over)
  for _, entry in ipairs(oldest) do
    redis.call('HDEL', KEYS[13], entry[2][6])
  end
  redis.call('XTRIM', KEYS[12], 'MAXLEN', tonumber(ARGV[10]))
end
redis.call('HINCRBY', KEYS[7], ARGV[7], 1)
redis.call('PUBLISH', ARGV[3],
  '{"position":"' .. position .. '","message":' .. ARGV[2] .. '}')
return {position, 1}
"""
)


@dataclass(frozen=True)
class Appended:
    position: str
    published: bool  # False: it had been relayed before, nothing was published


def append_and_publish(
    client: redis.Redis,
    channel: str,
    message_id: str,
    envelope_json: str,
    *,
    retention: int = DEFAULT_RETENTION,
    retention_bytes: int = bounds.DEFAULT_RETENTION_BYTES,
    idle_ttl_s: int = bounds.DEFAULT_IDLE_TTL_S,
    recent: int = bounds.DEFAULT_RECENT_MESSAGES,
    now_s: float | None = None,
) -> Appended:
    """Record the message in the channel's stream and publish it, unless done before."""
    script = client.register_script(_APPEND_AND_PUBLISH)
    position, published = script(
        keys=[
            keys.channel_stream(channel),
            keys.channel_positions(channel),
            keys.relayed(channel, message_id),
            keys.channel_bytes(channel),
            *index.prune_keys(),
            keys.RELAY_PENDING,
            keys.RELAY_PENDING_INDEX,
            keys.CHANNEL_RECENT,
            keys.CHANNEL_RECENT_IDS,
        ],
        args=[
            message_id,
            envelope_json,
            keys.channel_pubsub(channel),
            retention,
            _trim_batch(retention),
            RELAYED_MARK_TTL_S,
            channel,
            retention_bytes,
            idle_ttl_s,
            recent,
            _trim_batch(recent),
            time.time() if now_s is None else now_s,
            index.PRUNE_PER_APPEND,
        ],
    )
    return Appended(position=as_text(position), published=bool(published))


def _trim_batch(retention: int) -> int:
    return min(TRIM_BATCH, max(1, retention // 10))


@dataclass(frozen=True)
class Pending:
    """A message accepted by the web and not yet relayed: everything needed to relay it."""

    channel: str
    message_id: str
    data: Any
    published_at: str
    retention: int  # messages
    # Added later than `retention`: a pending message recorded before has the defaults.
    retention_bytes: int = bounds.DEFAULT_RETENTION_BYTES
    idle_ttl_s: int = bounds.DEFAULT_IDLE_TTL_S
    recent: int = bounds.DEFAULT_RECENT_MESSAGES

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def remember_pending(client: redis.Redis, pending: Pending, now_s: float) -> None:
    """Record a message before its relay task is sent, so a lost task can be made good."""
    with client.pipeline(transaction=True) as pipe:
        queue_pending(pipe, pending, now_s)
        pipe.execute()


def queue_pending(pipe: Pipeline, pending: Pending, now_s: float) -> None:
    """Queue the commands that record a message as pending on ``pipe``."""
    pipe.hset(keys.RELAY_PENDING, pending.message_id, pending.to_json())
    pipe.zadd(keys.RELAY_PENDING_INDEX, {pending.message_id: now_s})


def forget_pending(client: redis.Redis, message_id: str) -> None:
    with client.pipeline(transaction=True) as pipe:
        pipe.hdel(keys.RELAY_PENDING, message_id)
        pipe.zrem(keys.RELAY_PENDING_INDEX, message_id)
        pipe.execute()


def overdue(client: redis.Redis, accepted_before_s: float, limit: int) -> list[Pending]:
    """Pending messages accepted before a time, oldest first."""
    raw_ids = client.zrangebyscore(
        keys.RELAY_PENDING_INDEX, 0, accepted_before_s, start=0, num=limit
    )
    ids = [as_text(message_id) for message_id in raw_ids]
    if not ids:
        return []
    return [
        Pending(**json.loads(raw))
        for raw in client.hmget(keys.RELAY_PENDING, ids)
        if raw is not None  # None: relayed in between
    ]


def position_of(client: redis.Redis, channel: str, message_id: str) -> Position | None:
    """Where a retained message sits in its stream; None once it was trimmed (or never was)."""
    raw = client.hget(keys.channel_positions(channel), message_id)
    return None if raw is None else channels.parse_position(raw)


def read_after(
    client: redis.Redis, channel: str, after: Position, *, limit: int | None = None
) -> Iterator[Delivery]:
    """Retained messages after a position, oldest first, read in batches."""
    start = "(" + channels.format_position(after) if after != channels.START else "-"
    remaining = limit
    while remaining is None or remaining > 0:
        count = READ_BATCH if remaining is None else min(READ_BATCH, remaining)
        entries = client.xrange(keys.channel_stream(channel), start, "+", count=count) or []
        for raw_position, fields in entries:
            yield as_delivery(channel, raw_position, fields)
        if len(entries) < count:
            return
        start = "(" + as_text(entries[-1][0])
        if remaining is not None:
            remaining -= len(entries)


def last_position(client: redis.Redis, channel: str) -> Position:
    """The newest position in the channel, or START when it has none."""
    entries = client.xrevrange(keys.channel_stream(channel), "+", "-", count=1)
    return channels.parse_position(as_text(entries[0][0])) if entries else channels.START


@dataclass(frozen=True)
class Summary:
    name: str
    length: int
    last_id: str | None


def summaries(client: redis.Redis, names: list[str]) -> list[Summary]:
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.xlen(keys.channel_stream(name))
            pipe.xrevrange(keys.channel_stream(name), "+", "-", count=1)
        replies = pipe.execute()
    found = []
    for at, name in enumerate(names):
        length, newest = replies[2 * at], replies[2 * at + 1]
        last_id = _fields(newest[0][1]).get("id") if newest else None
        found.append(Summary(name=name, length=int(length), last_id=last_id))
    return found


def as_delivery(channel: str, raw_position: Any, raw_fields: Any) -> Delivery:
    """A stream entry as the delivery of its message."""
    fields = _fields(raw_fields)
    return Delivery(
        channel=channel,
        position=channels.parse_position(raw_position),
        message_id=fields["id"],
        envelope_json=fields["message"],
    )


def _fields(raw: dict[Any, Any]) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in raw.items()}
