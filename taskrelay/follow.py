"""A terminal subscriber that talks to Redis directly and rides out Redis restarts.

It subscribes before it reads the stream, and after every reconnect it reads the
stream from its cursor again, so it misses nothing retained and repeats nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from tasks import channels, keys
from tasks.channels import Delivery, Pattern
from tasks.channels import cursor as channel_cursor
from tasks.channels import log as channel_log
from tasks.channels.cursor import Cursor
from tasks.connections import WEB_RETRIES, make_client

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0
RECONNECT_BACKOFF_MIN_S = 0.1
RECONNECT_BACKOFF_MAX_S = 5.0
_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


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
        backoff_s = RECONNECT_BACKOFF_MIN_S
        while not self.stopping.is_set():
            client = make_client(self.redis_url, retries=WEB_RETRIES)
            try:
                if cursor is None:
                    cursor, gap = self._resume(client)
                    if gap is not None:
                        yield Gap(gap)
                yield from self._session(client, cursor)
            except _ERRORS as error:
                logger.warning("lost Redis (%s); reconnecting in %.1f s", error, backoff_s)
            else:
                backoff_s = RECONNECT_BACKOFF_MIN_S
            finally:
                client.close()
            if self.stopping.wait(backoff_s):
                return
            backoff_s = min(backoff_s * 2, RECONNECT_BACKOFF_MAX_S)

    def stop(self) -> None:
        self.stopping.set()

    def _resume(self, client: redis.Redis) -> tuple[Cursor, dict[str, Any] | None]:
        if self.pattern is not None:
            return channel_cursor.resume_pattern(client, self.pattern, self.from_id)
        return channel_cursor.resume_channel(client, str(self.channel), self.from_id)

    def _session(self, client: redis.Redis, cursor: Cursor) -> Iterator[Delivery]:
        pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            if self.pattern is not None:
                pubsub.psubscribe(self.pattern.redis_glob())
            else:
                pubsub.subscribe(keys.channel_pubsub(str(self.channel)))
            pubsub.get_message(timeout=POLL_INTERVAL_S)  # the confirmation
            self.on_subscribed()
            for channel in channel_cursor.channels_of(client, self.channel, self.pattern):
                for delivery in channel_log.read_after(client, channel, cursor.after(channel)):
                    if cursor.take(delivery):
                        yield delivery
            while not self.stopping.is_set():
                message = pubsub.get_message(timeout=POLL_INTERVAL_S)
                if message is None or message["type"] not in ("message", "pmessage"):
                    continue
                channel = channels.channel_of_pubsub(message["channel"])
                if self.pattern is not None and not self.pattern.matches(channel):
                    continue  # Redis's glob crosses dots; the pattern does not
                delivery = channels.from_payload(channel, message["data"])
                if cursor.take(delivery):
                    yield delivery
        finally:
            pubsub.close()
