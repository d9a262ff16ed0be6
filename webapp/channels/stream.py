"""One SSE client of channel messages: history from the stream, then the live feed.

The client subscribes to the hub before it reads the stream, so nothing can fall
between the two; a cursor of the last position seen per channel drops whatever
both of them hand over, so nothing arrives twice and order holds per channel.
A client that goes away is noticed between waits, so its stream ends and frees
its slot within seconds, not at the next keep-alive.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from tasks.channels import Delivery
from tasks.channels.cursor import Cursor, catch_up
from tasks.channels.reconnect import CATCH_UP_PATIENCE_S, CATCH_UP_RETRY_S, LOST_REDIS
from webapp import sse
from webapp.channels.hub import RESYNC, STOP, Hub, Item, Selector, Subscription
from webapp.channels.metrics import ChannelMetrics

# Messages already waiting for a client go out in one write, up to this many:
# a client that fell behind costs one socket send per burst, not one per message.
MAX_FRAMES_PER_WRITE = 64
# How often an idle stream looks whether its client closed the connection, in
# seconds: a departed client's stream ends (and gives back its slot) within this
# long instead of at the next keep-alive write, 15 s away.
DEPARTURE_CHECK_S = 2.0


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
    # The client's connection, when the server lends it (gunicorn does).
    peer: socket.socket | None = None

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
            item = self._next(subscription)
            if item is GONE:
                return
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

    def _next(self, subscription: Subscription) -> Item | _Gone | None:
        """The next item; None after a heartbeat's wait; GONE once the client left."""
        deadline = time.monotonic() + self.heartbeat_s
        while (left := deadline - time.monotonic()) > 0:
            item = subscription.next(min(left, DEPARTURE_CHECK_S))
            if item is not None:
                return item
            if self.peer is not None and peer_closed(self.peer):
                return GONE
        return None

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


def peer_closed(sock: socket.socket) -> bool:
    """Whether the client closed its connection, found without waiting or reading its bytes."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:  # reset, or closed under us
        return True


class _Gone:
    """Marker: the client closed its connection."""


GONE = _Gone()


class _Reconnect(Exception):
    """Ends a stream with a retry hint."""
