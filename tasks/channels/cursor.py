"""Where a subscriber stands: the last position it has per channel, where it resumes,
and catching up from the stream.

The web's SSE streams and the terminal subscriber resume the same way: exactly
after a message id still retained, or with a gap notice when it is not. After
every (re)subscription they catch up from the stream, and the cursor drops what
both the stream and pub/sub hand over, so nothing arrives twice. A channel
subscription catches up from its channel's stream; a pattern subscription from
the recent index (tasks/channels/recent.py), whatever the number of channels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from tasks import channels
from tasks.channels import Delivery, Pattern, Position, log, recent

# A message's place in the recent index is taken in the same script as its stream
# position, from the same clock, so it is never earlier; a pattern subscriber that
# took a message reads the index from this long before it, in milliseconds, which
# also covers a step back of Redis's clock between the two. What it reads twice,
# the cursor drops.
RECENT_MARGIN_MS = 1_000


@dataclass
class Cursor:
    """The last position delivered per channel; channels not yet seen start after `default`.

    ``recent_after`` is where a pattern subscription's next catch-up reads the
    recent index from (exclusive); a channel subscription does not use it.
    """

    default: Position = channels.START
    seen: dict[str, Position] = field(default_factory=dict)
    recent_after: Position = channels.START

    def after(self, channel: str) -> Position:
        return self.seen.get(channel, self.default)

    def take(self, delivery: Delivery) -> bool:
        """True, and remember it, if the delivery is newer than what the subscriber has."""
        if delivery.position <= self.after(delivery.channel):
            return False
        self.seen[delivery.channel] = delivery.position
        self.read_recent_from(delivery.position[0] - RECENT_MARGIN_MS)
        return True

    def read_recent_from(self, milliseconds: int) -> None:
        """Catch up from the recent index no earlier than this time, in ms (never moves back)."""
        self.recent_after = max(self.recent_after, (max(0, milliseconds), 0))


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
    """Where a pattern subscription starts: one or two reads, whatever the number of channels.

    Without an id, with what is published from now on. With the id of a message
    still in the recent index, exactly after it on every channel; else with a gap
    notice, then what the recent index still holds.
    """
    if last_id is None:
        seconds, micros = client.time()
        now_ms = seconds * 1000 + micros // 1000
        cursor = Cursor(default=_just_before(now_ms))
        cursor.read_recent_from(now_ms - RECENT_MARGIN_MS)
        return cursor, None
    found = recent.locate(client, last_id)
    if found is None or not pattern.matches(found.channel):
        return Cursor(), gap_notice(last_id, None)
    return Cursor(seen={found.channel: found.position}, recent_after=found.place), None


def catch_up(
    client: redis.Redis, cursor: Cursor, channel: str | None, pattern: Pattern | None
) -> Iterator[Delivery]:
    """What is retained after the cursor, on every channel the subscription hears.

    Each delivery is taken by the cursor as it is handed over, so a catch-up cut
    short by a lost Redis resumes where it stopped.
    """
    if pattern is None:
        for delivery in log.read_after(client, str(channel), cursor.after(str(channel))):
            if cursor.take(delivery):
                yield delivery
        return
    yield from _catch_up_pattern(client, cursor, pattern)


def _catch_up_pattern(client: redis.Redis, cursor: Cursor, pattern: Pattern) -> Iterator[Delivery]:
    """Read the recent index after the cursor, fetching only the messages to deliver."""
    for batch in recent.batches_after(client, cursor.recent_after):
        wanted = [
            reference
            for reference in batch
            if pattern.matches(reference.channel)
            and reference.position > cursor.after(reference.channel)
        ]
        for delivery in recent.fetch(client, wanted):
            if cursor.take(delivery):
                yield delivery
        cursor.recent_after = max(cursor.recent_after, batch[-1].place)


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
