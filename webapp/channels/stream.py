"""One SSE client of channel messages: history from the stream, then the live feed.

The client subscribes to the hub before it reads the stream, so nothing can fall
between the two; a cursor of the last position seen per channel drops whatever
both of them hand over, so nothing arrives twice and order holds per channel.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from tasks.channels import Delivery
from tasks.channels.cursor import Cursor, catch_up
from tasks.channels.reconnect import CATCH_UP_PATIENCE_S, CATCH_UP_RETRY_S, LOST_REDIS
from webapp import sse
from webapp.channels.hub import RESYNC, STOP, Hub, Selector, Subscription
from webapp.channels.metrics import ChannelMetrics

# Messages already waiting for a client go out in one write, up to this many:
# a client that fell behind costs one socket send per burst, not one per message.
MAX_FRAMES_PER_WRITE = 64


def frame(delivery: Delivery) -> str:
    return f"id: {delivery.message_id}\nevent: message\ndata: {delivery.envelope_json}\n\n"


@dataclass
class ChannelStream:
    client: redis.Redis
    hub: Hub
    metrics: ChannelMetrics
    selector: Selector
    cursor: Cursor
    heartbeat_s: float
    gap: dict[str, object] | None = None

    def events(self) -> Iterator[str]:
        subscription = self.hub.subscribe(self.selector)
        try:
            # Something goes out at once, so the client sees the stream open
            # without waiting for the first message or keep-alive.
            yield sse.retry_hint()
            if self.gap is not None:
                yield sse.event("gap", self.gap)
            yield from self._catch_up()
            yield from self._live(subscription)
        except _Reconnect:
            yield sse.retry_hint()
        finally:
            self.hub.unsubscribe(subscription)

    def _live(self, subscription: Subscription) -> Iterator[str]:
        while True:
            if subscription.cut_off or subscription.stopped:
                # Too slow to keep up, or the server is stopping: the client
                # reconnects with Last-Event-ID and the stream fills the rest.
                raise _Reconnect
            item = subscription.next(self.heartbeat_s)
            if item is None:
                yield sse.KEEPALIVE
                continue
            frames: list[str] = []
            for ready in (item, *subscription.ready(MAX_FRAMES_PER_WRITE - 1)):
                if isinstance(ready, Delivery):
                    if self.cursor.take(ready):
                        frames.append(self._sent(ready))
                    continue
                if frames:
                    yield "".join(frames)
                    frames = []
                if ready is STOP:
                    raise _Reconnect
                if ready is RESYNC:
                    yield from self._catch_up()
            if frames:
                yield "".join(frames)

    def _catch_up(self) -> Iterator[str]:
        deadline = time.monotonic() + CATCH_UP_PATIENCE_S
        channel, pattern = self.selector.channel, self.selector.pattern
        while True:
            try:
                for delivery in catch_up(self.client, self.cursor, channel, pattern):
                    yield self._sent(delivery)
                return
            except LOST_REDIS:
                if time.monotonic() > deadline:
                    raise _Reconnect from None
                yield sse.KEEPALIVE
                time.sleep(CATCH_UP_RETRY_S)

    def _sent(self, delivery: Delivery) -> str:
        """The frame of a delivery the cursor has taken, counted as delivered."""
        self.metrics.delivered(delivery.channel)
        return frame(delivery)


class _Reconnect(Exception):
    """Ends a stream with a retry hint."""
