"""The recent index: the newest messages of every channel in one order, for pattern subscribers.

A pattern may match any number of channels, and catching up by reading each
channel's stream cost one read per known channel per subscriber: with 16,000
channels, a burst of pattern subscribers kept Redis busy for minutes. So the
relay script also appends a reference to every message here (channel, stream
position, id), trimmed to a count, and a pattern subscriber reads this one
stream, keeps what its pattern matches and fetches only the messages it will
deliver: its cost follows the messages published, never the number of channels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from tasks import channels, keys
from tasks.channels import Delivery, Position, log
from tasks.text import as_text


@dataclass(frozen=True)
class Reference:
    """Where a message sits: its place in the recent index, its channel and position there."""

    place: Position
    channel: str
    position: Position
    message_id: str


def batches_after(client: redis.Redis, place: Position) -> Iterator[list[Reference]]:
    """The references after a place in the index, oldest first, a batch per round trip."""
    start = "(" + channels.format_position(place) if place != channels.START else "-"
    while True:
        entries = client.xrange(keys.CHANNEL_RECENT, start, "+", count=log.READ_BATCH) or []
        if not entries:
            return
        yield [_reference(raw_place, fields) for raw_place, fields in entries]
        if len(entries) < log.READ_BATCH:
            return
        start = "(" + as_text(entries[-1][0])


def locate(client: redis.Redis, message_id: str) -> Reference | None:
    """The reference of a message still in the index; None once trimmed (or never there)."""
    raw_place = client.hget(keys.CHANNEL_RECENT_IDS, message_id)
    if raw_place is None:
        return None
    place = as_text(raw_place)
    entries = client.xrange(keys.CHANNEL_RECENT, place, place, count=1)
    return _reference(entries[0][0], entries[0][1]) if entries else None


def fetch(client: redis.Redis, references: list[Reference]) -> list[Delivery]:
    """The messages referred to, in the references' order, in one round trip.

    A message its channel no longer retains (trimmed, or the channel expired) is
    left out.
    """
    if not references:
        return []
    with client.pipeline(transaction=False) as pipe:
        for reference in references:
            position = channels.format_position(reference.position)
            pipe.xrange(keys.channel_stream(reference.channel), position, position, count=1)
        replies = pipe.execute()
    return [
        log.as_delivery(reference.channel, found[0][0], found[0][1])
        for reference, found in zip(references, replies, strict=True)
        if found
    ]


def _reference(raw_place: Any, raw_fields: Any) -> Reference:
    fields = {as_text(k): as_text(v) for k, v in raw_fields.items()}
    return Reference(
        place=channels.parse_position(raw_place),
        channel=fields["c"],
        position=channels.parse_position(fields["p"]),
        message_id=fields["i"],
    )
