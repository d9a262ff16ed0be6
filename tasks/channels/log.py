"""A channel's durable log in Redis: appending once and publishing, and reading it back.

Each channel keeps a stream (the retained messages), a hash from message id to
stream position, and a pub/sub channel. Appending is one Lua script, so a
message is recorded, indexed, trimmed and published atomically, exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import redis

from tasks import channels, keys
from tasks.channels import Delivery, Position
from tasks.text import as_text

# How many messages a channel retains by default; older ones are trimmed.
DEFAULT_RETENTION = 10_000
# Trimming runs once the stream is this far over its retention, so that its cost
# (one XRANGE and one HDEL per trimmed message) is paid in batches.
TRIM_BATCH = 100
# How long a relayed message is remembered, in seconds, so that a relay task
# redelivered after a worker died does not publish it twice. Longer than any
# visibility timeout the broker is configured with.
RELAYED_MARK_TTL_S = 7 * 86_400
# Entries read from a stream per round trip.
READ_BATCH = 500

# KEYS: stream, positions hash, relayed mark, channel index, published counter,
#       pending messages, pending index.
# ARGV: message id, envelope JSON, pub/sub channel, retention, trim batch, mark TTL, name.
_APPEND_AND_PUBLISH = """
redis.call('HDEL', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
local done = redis.call('GET', KEYS[3]) or redis.call('HGET', KEYS[2], ARGV[1])
if done then
  return {done, 0}
end
local position = redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'message', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], position)
redis.call('SET', KEYS[3], position, 'EX', tonumber(ARGV[6]))
redis.call('SADD', KEYS[4], ARGV[7])
local retention = tonumber(ARGV[4])
local excess = redis.call('XLEN', KEYS[1]) - retention
if excess >= tonumber(ARGV[5]) then
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess)
  for _, entry in ipairs(oldest) do
    redis.call('HDEL', KEYS[2], entry[2][2])
  end
  redis.call('XTRIM', KEYS[1], 'MAXLEN', retention)
end
redis.call('HINCRBY', KEYS[5], ARGV[7], 1)
redis.call('PUBLISH', ARGV[3],
  '{"position":"' .. position .. '","message":' .. ARGV[2] .. '}')
return {position, 1}
"""


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
) -> Appended:
    """Record the message in the channel's stream and publish it, unless done before."""
    script = client.register_script(_APPEND_AND_PUBLISH)
    position, published = script(
        keys=[
            keys.channel_stream(channel),
            keys.channel_positions(channel),
            keys.relayed(channel, message_id),
            keys.CHANNEL_INDEX,
            keys.METRICS_CHANNEL_PUBLISHED,
            keys.RELAY_PENDING,
            keys.RELAY_PENDING_INDEX,
        ],
        args=[
            message_id,
            envelope_json,
            keys.channel_pubsub(channel),
            retention,
            min(TRIM_BATCH, max(1, retention // 10)),
            RELAYED_MARK_TTL_S,
            channel,
        ],
    )
    return Appended(position=as_text(position), published=bool(published))


@dataclass(frozen=True)
class Pending:
    """A message accepted by the web and not yet relayed: everything needed to relay it."""

    channel: str
    message_id: str
    data: Any
    published_at: str
    retention: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def remember_pending(client: redis.Redis, pending: Pending, now_s: float) -> None:
    """Record a message before its relay task is sent, so a lost task can be made good."""
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(keys.RELAY_PENDING, pending.message_id, pending.to_json())
        pipe.zadd(keys.RELAY_PENDING_INDEX, {pending.message_id: now_s})
        pipe.execute()


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
            yield _delivery(channel, raw_position, fields)
        if len(entries) < count:
            return
        start = "(" + as_text(entries[-1][0])
        if remaining is not None:
            remaining -= len(entries)


def last_position(client: redis.Redis, channel: str) -> Position:
    """The newest position in the channel, or START when it has none."""
    entries = client.xrevrange(keys.channel_stream(channel), "+", "-", count=1)
    return channels.parse_position(as_text(entries[0][0])) if entries else channels.START


def known_channels(client: redis.Redis) -> list[str]:
    return sorted(as_text(name) for name in client.smembers(keys.CHANNEL_INDEX))


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
    for index, name in enumerate(names):
        length, newest = replies[2 * index], replies[2 * index + 1]
        last_id = _fields(newest[0][1]).get("id") if newest else None
        found.append(Summary(name=name, length=int(length), last_id=last_id))
    return found


def _delivery(channel: str, raw_position: Any, raw_fields: Any) -> Delivery:
    fields = _fields(raw_fields)
    return Delivery(
        channel=channel,
        position=channels.parse_position(raw_position),
        message_id=fields["id"],
        envelope_json=fields["message"],
    )


def _fields(raw: dict[Any, Any]) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in raw.items()}
