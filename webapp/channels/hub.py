"""The hub: one Redis pattern subscription per web process, fanned out to its SSE clients.

One thread owns the subscription. It hands each message to the bounded buffer
of every subscriber that hears the channel, never waiting for a slow one: a
full buffer marks its subscriber cut off instead. After every (re)subscription
it tells each subscriber to resynchronize from the stream, which fills any gap
left while Redis was unreachable.

The thread runs only while someone listens: once the last subscriber has been
gone for the idle grace, it unsubscribes, removes this process's subscriber
counts from Redis (it has none to report) and ends; the next subscriber starts
it again, and the (re)subscription's resynchronization fills what its streams
missed meanwhile.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from tasks import channels, connections, keys
from tasks.channels import Delivery, Pattern
from tasks.channels.reconnect import POLL_INTERVAL_S, Reconnecting
from webapp.channels.metrics import ChannelMetrics
from webapp.client_buffer import ClientBuffer
from webapp.idle_reader import READER_IDLE_GRACE_S, IdleReader

logger = logging.getLogger(__name__)

DEFAULT_BUFFER_MESSAGES = 1_000
# Subscriber counts and new delivery counts are written to Redis this often
# (channel_metrics.BEAT_TTL_S is how long they outlive a stopped process).
BEAT_INTERVAL_S = 2.0
# A change of subscribers is written sooner, but not more often than this.
BEAT_MIN_GAP_S = 0.25
STOP_TIMEOUT_S = 5.0


class Resync:
    """Marker: the subscription was (re)established; read the stream for what was missed."""


class Stop:
    """Marker: the hub stopped; end the stream with a hint to reconnect."""


RESYNC = Resync()
STOP = Stop()
Item = Delivery | Resync | Stop


@dataclass(frozen=True)
class Selector:
    """What a subscriber hears: one channel, or every channel matching a pattern."""

    channel: str | None = None
    pattern: Pattern | None = None

    def matches(self, channel: str) -> bool:
        if self.pattern is not None:
            return self.pattern.matches(channel)
        return channel == self.channel

    @property
    def label(self) -> str:
        return f"pattern:{self.pattern.text}" if self.pattern is not None else str(self.channel)


@dataclass(eq=False)
class Subscription(ClientBuffer[Item]):
    selector: Selector = field(kw_only=True)
    stopped: bool = False

    def stop(self) -> None:
        self.stopped = True
        self.offer(STOP)


class Hub:
    def __init__(
        self,
        redis_url: str,
        metrics: ChannelMetrics,
        *,
        pool_connections: int,
        pool_wait_s: float,
        buffer_messages: int = DEFAULT_BUFFER_MESSAGES,
        idle_grace_s: float = READER_IDLE_GRACE_S,
    ) -> None:
        """``pool_connections`` and ``pool_wait_s`` bound the hub's Redis pool (settings
        SSE_REDIS_CONNECTIONS and SSE_REDIS_WAIT_S): one connection holds the
        subscription, the rest serve the streams' reads, and a read that finds none
        free within the wait fails instead of queueing for ever."""
        self.redis_url = redis_url
        self.metrics = metrics
        self.buffer_messages = buffer_messages
        self._lock = threading.Lock()
        self._by_channel: dict[str, tuple[Subscription, ...]] = {}
        self._by_pattern: tuple[Subscription, ...] = ()
        self._stopping = threading.Event()
        self._reader = IdleReader("channel-hub", self._run, idle_grace_s)
        self.client = _make_client(redis_url, pool_connections, pool_wait_s)
        self._counts_changed = True
        self.hub_id = ""

    # -- subscribers (any thread) --

    def subscribe(self, selector: Selector) -> Subscription:
        subscription = Subscription(self.buffer_messages, selector=selector)
        with self._lock:
            if selector.pattern is not None:
                self._by_pattern = (*self._by_pattern, subscription)
            else:
                name = str(selector.channel)
                self._by_channel[name] = (*self._by_channel.get(name, ()), subscription)
            self._counts_changed = True
            # Started once it is counted: an idle thread cannot end under it.
            self._ensure_started()
        self.metrics.subscribed(selector.label, +1)
        if self._stopping.is_set():
            subscription.stop()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        selector = subscription.selector
        with self._lock:
            if selector.pattern is not None:
                self._by_pattern = tuple(s for s in self._by_pattern if s is not subscription)
            else:
                name = str(selector.channel)
                rest = tuple(s for s in self._by_channel.get(name, ()) if s is not subscription)
                if rest:
                    self._by_channel[name] = rest
                else:
                    self._by_channel.pop(name, None)
            self._counts_changed = True
            if not self._has_subscribers():
                self._reader.left_alone()
        self.metrics.subscribed(selector.label, -1)

    def subscriber_counts(self) -> dict[str, int]:
        with self._lock:
            counts = {name: len(subs) for name, subs in self._by_channel.items()}
            for subscription in self._by_pattern:
                label = subscription.selector.label
                counts[label] = counts.get(label, 0) + 1
        return counts

    # -- lifecycle --

    def _ensure_started(self) -> None:
        """Start the thread unless it is listening; the caller holds the lock."""
        if self._stopping.is_set() or self.listening():
            return
        # A new presence each time: a retired thread has forgotten its own.
        self.hub_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._reader.start()

    def listening(self) -> bool:
        """Whether the thread runs (it ends a grace after the last subscriber)."""
        return self._reader.running()

    def request_stop(self) -> None:
        """End every stream with a reconnect hint; never blocks, so a signal handler may call it."""
        self._stopping.set()
        # Read without the lock: the tuples are replaced whole, never changed.
        everyone = [s for subs in list(self._by_channel.values()) for s in subs]
        for subscription in (*everyone, *self._by_pattern):
            subscription.stop()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """End every stream, then stop and join the thread."""
        self.request_stop()
        self._reader.join(timeout_s)
        if not self._reader.started or self._reader.retired:
            self._close_client()  # a thread that ran to the stop has closed it

    # -- the hub thread --

    def _run(self) -> None:
        # The loop boundary: whatever went wrong, keep serving after a pause.
        for attempt in Reconnecting(self._stopping, "channel hub", survive=(Exception,)):
            with attempt:
                self._listen()
            if self._idle():
                # Nobody listens here: there are no subscriber counts to report.
                self._forget_beat(self.client)
                if self._retire_if_idle():
                    return
        self._forget_beat(self.client)
        self._close_client()

    def _has_subscribers(self) -> bool:
        return bool(self._by_channel or self._by_pattern)

    def _idle(self) -> bool:
        return self._reader.idle(self._has_subscribers())

    def _retire_if_idle(self) -> bool:
        """End the thread, unless a subscriber came meanwhile (it subscribes again then)."""
        with self._lock:
            if self._stopping.is_set() or not self._idle():
                return False
            self._reader.retire()
            return True

    def _close_client(self) -> None:
        self.client.close()
        # A pool handed to the client is not closed with it.
        self.client.connection_pool.disconnect()

    def _listen(self) -> None:
        pubsub = self.client.pubsub()  # type: ignore[no-untyped-call, unused-ignore]
        try:
            pubsub.psubscribe(keys.CHANNEL_PUBSUB_PREFIX + "*")
            last_beat = last_primary_check = 0.0
            while not self._stopping.is_set() and not self._idle():
                message = pubsub.get_message(timeout=POLL_INTERVAL_S)
                if message is not None:
                    self._handle(message)
                if time.monotonic() - last_primary_check >= connections.PRIMARY_RECHECK_S:
                    last_primary_check = time.monotonic()
                    # Through Sentinel: the old primary still takes this subscription
                    # for seconds after a promotion, while messages go to the new one.
                    if connections.serves_a_replaced_primary(
                        self.client.connection_pool, pubsub.connection
                    ):
                        raise redis.ConnectionError("Sentinel promoted another primary")
                since = time.monotonic() - last_beat
                if since >= BEAT_INTERVAL_S or (self._counts_changed and since >= BEAT_MIN_GAP_S):
                    self._beat(self.client)
                    last_beat = time.monotonic()
        finally:
            pubsub.close()

    def _handle(self, message: dict[str, Any]) -> None:
        if message["type"] == "psubscribe":
            self._broadcast(RESYNC)
            return
        delivery = channels.from_pubsub(message)
        if delivery is not None:
            self._dispatch(delivery)

    def _dispatch(self, delivery: Delivery) -> None:
        exact = self._by_channel.get(delivery.channel, ())
        for subscription in (*exact, *self._by_pattern):
            if subscription.selector.matches(delivery.channel) and not subscription.offer(delivery):
                self.metrics.dropped(delivery.channel)

    def _broadcast(self, item: Item) -> None:
        with self._lock:
            everyone = [s for subs in self._by_channel.values() for s in subs]
            everyone += self._by_pattern
        for subscription in everyone:
            subscription.offer(item)

    def _beat(self, client: redis.Redis) -> None:
        self._counts_changed = False
        with client.pipeline(transaction=True) as pipe:
            self.metrics.beat(pipe, self.hub_id, self.subscriber_counts())
            pipe.execute()

    def _forget_beat(self, client: redis.Redis) -> None:
        if not self.hub_id:
            return
        try:
            client.delete(keys.hub_subscribers(self.hub_id))
            client.zrem(keys.HUB_INDEX, self.hub_id)
        except (redis.RedisError, OSError):
            logger.info("could not remove this hub's subscriber counts; they expire")


def _make_client(url: str, max_connections: int, wait_s: float) -> redis.Redis:
    # Through Sentinel, every new connection (the subscription's after a failure
    # too) goes to the primary of the moment; _run then subscribes again and
    # RESYNC refills every stream from Redis, as after a restart.
    return connections.make_blocking_client(
        url,
        # One for the subscription, at least one for reads.
        max_connections=max(2, max_connections),
        pool_wait_s=wait_s,
        # A new stream reads where to start before it answers, so a frozen Redis
        # must cost it no more than any other web request (WEB_STALL_BOUND_S).
        socket_connect_timeout=connections.WEB_SOCKET_CONNECT_TIMEOUT_S,
        socket_timeout=connections.WEB_SOCKET_TIMEOUT_S,
        health_check_interval=connections.HEALTH_CHECK_INTERVAL_S,
    )
