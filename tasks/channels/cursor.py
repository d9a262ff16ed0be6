"""Where a subscriber stands: the last position it has per channel, where it resumes,
and catching up from the stream.

The web's SSE streams and the terminal subscriber resume the same way: exactly
after a message id still retained, or with a gap notice when it is not. After
every (re)subscription they catch up from the stream, and the cursor drops what
both the stream and pub/sub hand over, so nothing arrives twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from tasks import channels
from tasks.channels import Delivery, Pattern, Position, log


@dataclass
class Cursor:
    """The last position delivered per channel; channels not yet seen start after `default`."""

    default: Position = channels.START
    seen: dict[str, Position] = field(default_factory=dict)

    def after(self, channel: str) -> Position:
        return self.seen.get(channel, self.default)

    def take(self, delivery: Delivery) -> bool:
        """True, and remember it, if the delivery is newer than what the subscriber has."""
        if delivery.position <= self.after(delivery.channel):
            return False
        self.seen[delivery.channel] = delivery.position
        return True


def resume_channel(
    client: redis.Redis, channel: str, last_id: str | None
) -> tuple[Cursor, dict[str, Any] | None]:
    """Where a channel subscription starts, and the gap notice to give first, if any."""
    if last_id is None:
        return Cursor(seen={channel: log.last_position(client, channel)}), None
    position = log.position_of(client, channel, last_id)
    if position is None:
        return Cursor(), gap_notice(last_id, channel)
    return Cursor(seen={channel: position}), None


def resume_pattern(
    client: redis.Redis, pattern: Pattern, last_id: str | None
) -> tuple[Cursor, dict[str, Any] | None]:
    """Where a pattern subscription starts.

    The last id is exact for its own channel; other channels resume from the same
    millisecond, which may repeat a message of that millisecond but never skips one.
    """
    if last_id is None:
        seconds, micros = client.time()
        return Cursor(default=_just_before(seconds * 1000 + micros // 1000)), None
    for channel in log.known_channels(client):
        if not pattern.matches(channel):
            continue
        position = log.position_of(client, channel, last_id)
        if position is not None:
            return Cursor(default=_just_before(position[0]), seen={channel: position}), None
    return Cursor(), gap_notice(last_id, None)


def channels_of(client: redis.Redis, channel: str | None, pattern: Pattern | None) -> list[str]:
    """The channels a subscription reads history from."""
    if pattern is None:
        return [str(channel)]
    return [c for c in log.known_channels(client) if pattern.matches(c)]


def catch_up(
    client: redis.Redis, cursor: Cursor, channel: str | None, pattern: Pattern | None
) -> Iterator[Delivery]:
    """What the stream retains after the cursor, on every channel the subscription hears.

    Each delivery is taken by the cursor as it is handed over, so a catch-up cut
    short by a lost Redis resumes where it stopped.
    """
    for name in channels_of(client, channel, pattern):
        for delivery in log.read_after(client, name, cursor.after(name)):
            if cursor.take(delivery):
                yield delivery


def gap_notice(last_id: str, channel: str | None) -> dict[str, Any]:
    return {
        "last_event_id": last_id,
        "channel": channel,
        "message": (
            "messages after this id are no longer retained (or the id is unknown); "
            "what follows starts at the oldest retained message"
        ),
    }


def _just_before(milliseconds: int) -> Position:
    return (milliseconds - 1, channels.END[1])
