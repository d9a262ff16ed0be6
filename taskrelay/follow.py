"""A terminal subscriber that talks to Redis directly and rides out Redis restarts.

It subscribes before it reads the stream, and after every reconnect it reads the
stream from its cursor again, so it misses nothing retained and repeats nothing.
redis-py's pub/sub may reconnect by itself and subscribe again (its retry of a
read): that shows only as a new subscription's confirmation, so every
confirmation is followed by a read of the stream, as the web's hub does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from tasks import channels, keys
from tasks.channels import Delivery, Pattern
from tasks.channels.cursor import Cursor, catch_up, resume_channel, resume_pattern
from tasks.channels.reconnect import POLL_INTERVAL_S, Reconnecting
from tasks.connections import WEB_RETRIES, make_client

# The pub/sub confirmations of a subscription (redis-py's message types).
SUBSCRIBED = frozenset({"subscribe", "psubscribe"})


@dataclass(frozen=True)
class Gap:
    """Messages after the id asked for are no longer retained."""

    notice: dict[str, Any]


@dataclass
class Follower:
    redis_url: str
    channel: str | None = None
    pattern: Pattern | None = None
    from_id: str | None = None
    on_subscribed: Callable[[], None] = lambda: None
    stopping: threading.Event = field(default_factory=threading.Event)

    def messages(self) -> Iterator[Delivery | Gap]:
        """Every message, in order per channel, until stop(); reconnects for ever."""
        cursor: Cursor | None = None
        for attempt in Reconnecting(self.stopping, "terminal subscriber"):
            with attempt, make_client(self.redis_url, retries=WEB_RETRIES) as client:
                if cursor is None:
                    cursor, gap = self._resume(client)
                    if gap is not None:
                        yield Gap(gap)
                yield from self._session(client, cursor)

    def stop(self) -> None:
        self.stopping.set()

    def _resume(self, client: redis.Redis) -> tuple[Cursor, dict[str, Any] | None]:
        if self.pattern is not None:
            return resume_pattern(client, self.pattern, self.from_id)
        return resume_channel(client, str(self.channel), self.from_id)

    def _session(self, client: redis.Redis, cursor: Cursor) -> Iterator[Delivery]:
        pubsub = client.pubsub()  # type: ignore[no-untyped-call, unused-ignore]
        try:
            if self.pattern is not None:
                pubsub.psubscribe(self.pattern.redis_glob())
            else:
                pubsub.subscribe(keys.channel_pubsub(str(self.channel)))
            subscribed = False
            while not self.stopping.is_set():
                message = pubsub.get_message(timeout=POLL_INTERVAL_S)
                if message is not None and message["type"] in SUBSCRIBED:
                    # The first confirmation, or one after redis-py reconnected and
                    # subscribed again on its own: what was published meanwhile is
                    # only in the stream. The cursor drops what was handed over before.
                    if not subscribed:
                        subscribed = True
                        self.on_subscribed()
                    yield from catch_up(client, cursor, self.channel, self.pattern)
                    continue
                delivery = channels.from_pubsub(message)
                if delivery is None:
                    continue
                if self.pattern is not None and not self.pattern.matches(delivery.channel):
                    continue  # Redis's glob crosses dots; the pattern does not
                if cursor.take(delivery):
                    yield delivery
        finally:
            pubsub.close()
