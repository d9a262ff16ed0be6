"""The task feed: one reader per web process follows the stream of every task's state
changes (keys.TASK_EVENTS) and fans each change out to the open
GET /api/tasks/events streams, so a thousand open pages cost one blocking Redis read.

A stream that resumes (Last-Event-ID) subscribes first, then reads what it missed
from Redis, then takes the fan-out from where that read ended, skipping what it
has sent: nothing falls between the two. A stream whose buffer fills (a slow
client) is ended with a reconnect hint; its client resumes from Redis.

The reader runs only while someone listens: once the last stream has been gone
for the idle grace, it ends and closes its connection, and the next stream starts
it again, positioned at the stream's end as the first one was. A stream that
resumes across that pause reads what it missed from Redis, as any resume does.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from tasks import connections, keys
from tasks.channels.reconnect import Reconnecting
from tasks.connections import UNREACHABLE
from tasks.text import as_text
from webapp import sse
from webapp.client_buffer import ClientBuffer
from webapp.errors import BadRequest, ServiceUnavailable
from webapp.idle_reader import READER_IDLE_GRACE_S, IdleReader

logger = logging.getLogger(__name__)

EXTENSION_KEY = "taskrelay.task_feed"
EVENT_NAME = "task"
# How long one blocking read waits, in ms: bounds how late a stop is noticed.
BLOCK_MS = 1_000
READ_COUNT = 500
# Events one stream may have waiting before it is cut off (its client resumes).
BUFFER_EVENTS = 10_000
# Events sent in one write, and read per page when catching up.
BATCH_EVENTS = 500
# How long a new stream waits for the reader to know where the stream ends.
POSITION_WAIT_S = 2.0
STOP_TIMEOUT_S = 5.0
SUBSCRIBED = ": subscribed\n\n"
STREAM_ID = re.compile(r"\A[0-9]{1,20}-[0-9]{1,20}\Z")


@dataclass(frozen=True)
class TaskEvent:
    id: str
    data: str  # the event's JSON, as written by the index step

    def frame(self) -> str:
        return f"id: {self.id}\nevent: {EVENT_NAME}\ndata: {self.data}\n\n"


class Stop:
    """Marker: the feed stopped, or this subscriber fell behind; end with a reconnect hint."""


STOP = Stop()


# What one stream of the feed holds between the reader and its client.
Subscription = ClientBuffer[TaskEvent | Stop]


def parse_event_id(raw: str | None) -> str | None:
    """A Last-Event-ID as this feed hands them out, or 400."""
    if raw is None or raw == "":
        return None
    if not STREAM_ID.match(raw):
        raise BadRequest(
            "'Last-Event-ID' must be an event id this stream sent", field="last_event_id"
        )
    return raw


def _newer(event_id: str, than: str) -> bool:
    ms, _, seq = event_id.partition("-")
    than_ms, _, than_seq = than.partition("-")
    return (int(ms), int(seq)) > (int(than_ms), int(than_seq))


class TaskFeed:
    def __init__(
        self,
        redis_url: str,
        *,
        buffer_events: int = BUFFER_EVENTS,
        idle_grace_s: float = READER_IDLE_GRACE_S,
    ) -> None:
        self.buffer_events = buffer_events
        # Its own small pool: the blocking read outlasts the web client's timeout.
        self.client = connections.make_blocking_client(
            redis_url,
            max_connections=2,
            pool_wait_s=POSITION_WAIT_S,
            socket_connect_timeout=connections.SOCKET_CONNECT_TIMEOUT_S,
            socket_timeout=connections.SOCKET_TIMEOUT_S + BLOCK_MS / 1000,
            health_check_interval=connections.HEALTH_CHECK_INTERVAL_S,
        )
        self._lock = threading.Lock()
        self._subscribers: tuple[Subscription, ...] = ()
        self._stopping = threading.Event()
        self._positioned = threading.Event()
        self._last_id: str | None = None
        self._reader = IdleReader("task-feed", self._run, idle_grace_s)

    # -- streams (any thread) --

    def subscribe(self) -> Subscription:
        """A new subscriber, once the reader knows where the stream ends (else 503)."""
        subscription = Subscription(self.buffer_events)
        with self._lock:
            # Counted before the reader is started: an idle reader cannot end under it.
            self._subscribers = (*self._subscribers, subscription)
            self._ensure_started()
        if self._stopping.is_set():
            subscription.offer(STOP)
            return subscription
        if not self._positioned.wait(POSITION_WAIT_S):
            self.unsubscribe(subscription)
            raise ServiceUnavailable("the task event stream cannot be read; try again shortly")
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscription)
            if not self._subscribers:
                self._reader.left_alone()

    def subscriptions(self) -> tuple[Subscription, ...]:
        return self._subscribers

    # -- lifecycle --

    def _ensure_started(self) -> None:
        """Start the reader unless it is reading; the caller holds the lock."""
        if not self._stopping.is_set():
            self._reader.start()

    def reading(self) -> bool:
        """Whether the reader thread runs (it ends a grace after its last subscriber)."""
        return self._reader.running()

    def request_stop(self) -> None:
        """End every stream with a reconnect hint; never blocks, so a signal handler may call it."""
        self._stopping.set()
        for subscription in self._subscribers:  # replaced whole, never changed: no lock
            subscription.offer(STOP)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """End every stream with a reconnect hint, then stop and join the reader."""
        self.request_stop()
        self._reader.join(timeout_s)
        self.client.close()
        self.client.connection_pool.disconnect()

    # -- the reader thread --

    def _run(self) -> None:
        # The loop boundary: whatever went wrong, keep reading after a pause.
        for attempt in Reconnecting(self._stopping, "task feed", survive=(Exception,)):
            with attempt:
                self._listen()
            if self._idle():
                # Nobody listens: give the connection back to Redis until someone does.
                self.client.connection_pool.disconnect()
                if self._retire_if_idle():
                    return

    def _idle(self) -> bool:
        return self._reader.idle(bool(self._subscribers))

    def _retire_if_idle(self) -> bool:
        """End the reader, unless a subscriber came meanwhile; the next one positions anew."""
        with self._lock:
            if self._stopping.is_set() or not self._idle():
                return False
            self._reader.retire()
            self._last_id = None
            self._positioned.clear()
            return True

    def _listen(self) -> None:
        if self._last_id is None:
            newest = self.client.xrevrange(keys.TASK_EVENTS, count=1)
            self._last_id = as_text(newest[0][0]) if newest else "0-0"
            self._positioned.set()
        while not self._stopping.is_set() and not self._idle():
            reply: Any = self.client.xread(
                {keys.TASK_EVENTS: self._last_id}, count=READ_COUNT, block=BLOCK_MS
            )
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    event = _event(entry_id, fields)
                    self._last_id = event.id
                    for subscription in self._subscribers:
                        subscription.offer(event)


def _event(entry_id: Any, fields: Any) -> TaskEvent:
    data = fields.get(b"data", fields.get("data", b"{}"))
    return TaskEvent(as_text(entry_id), as_text(data))


def missed(client: redis.Redis, after_id: str) -> Iterator[list[TaskEvent]]:
    """The events after ``after_id`` still in the stream, in pages, oldest first."""
    start = f"({after_id}"
    while True:
        entries: Any = client.xrange(keys.TASK_EVENTS, min=start, count=BATCH_EVENTS)
        if not entries:
            return
        page = [_event(entry_id, fields) for entry_id, fields in entries]
        yield page
        if len(entries) < BATCH_EVENTS:
            return
        start = f"({page[-1].id}"


def event_stream(
    client: redis.Redis, feed: TaskFeed, last_event_id: str | None, heartbeat_s: float
) -> Iterator[str]:
    """Every task's state changes, resuming after ``last_event_id`` when given."""
    subscription = feed.subscribe()
    try:
        # Said at once, so that the response starts as soon as it is subscribed.
        yield SUBSCRIBED
        last = last_event_id
        try:
            if last is not None:
                for page in missed(client, last):
                    yield "".join(event.frame() for event in page)
                    last = page[-1].id
        except UNREACHABLE:
            yield sse.retry_hint()
            return
        while True:
            if subscription.cut_off:
                # Fell behind: end, and let the client resume from Redis.
                yield sse.retry_hint()
                return
            items = subscription.take(heartbeat_s, BATCH_EVENTS)
            if not items:
                yield sse.KEEPALIVE
                continue
            frames: list[str] = []
            for item in items:
                if isinstance(item, Stop):
                    yield "".join(frames) + sse.retry_hint()
                    return
                if last is None or _newer(item.id, last):
                    frames.append(item.frame())
                    last = item.id
            if frames:
                yield "".join(frames)
    finally:
        feed.unsubscribe(subscription)
