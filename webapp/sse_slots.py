"""How many Server-Sent Events streams a web process holds: in all, and per client address.

Every stream holds a connection (a greenlet under gevent, a thread under gthread)
for as long as it is open, and a gunicorn worker serves a bounded number at once:
past it, the worker stops accepting and every request waits, health checks
included. So a stream takes a slot before it reads anything: past the client's
share it is 429, past the process's total 503, both with Retry-After. Slots are
counted in the process, exactly, with no Redis round trip and nothing left behind
by a process that dies; what they protect, the process's connections, is its own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, Response, current_app
from flask_limiter.util import get_remote_address

from webapp.errors import ApiError, ServiceUnavailable

EXTENSION_KEY = "taskrelay.sse_slots"


class TooManyStreams(ApiError):
    status, code = 429, "too_many_streams"


@dataclass
class Slot:
    """One open stream's place; released once, when its response is closed."""

    slots: StreamSlots
    client: str
    _released: bool = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.slots.give_back(self.client)


@dataclass
class StreamSlots:
    total: int
    per_client: int
    retry_after_s: int
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _held: Counter[str] = field(default_factory=Counter, init=False)
    _open: int = field(default=0, init=False)

    def claim(self, client: str) -> Slot:
        """A slot for a new stream of this client, or the error that refuses it."""
        with self._lock:
            if self._held[client] >= self.per_client:
                raise TooManyStreams(
                    f"this client has {self.per_client} event streams open on this server, "
                    "the most it may; close one or try again later",
                    retry_after_s=self.retry_after_s,
                )
            if self._open >= self.total:
                raise ServiceUnavailable(
                    f"this server holds {self.total} event streams, the most it serves at "
                    "once; try again shortly",
                    retry_after_s=self.retry_after_s,
                )
            self._held[client] += 1
            self._open += 1
        return Slot(self, client)

    def give_back(self, client: str) -> None:
        with self._lock:
            self._open -= 1
            self._held[client] -= 1
            if self._held[client] <= 0:
                del self._held[client]

    def open_streams(self) -> int:
        with self._lock:
            return self._open


def init_app(app: Flask) -> StreamSlots:
    """The app's slots, made once from its settings, for every area that streams."""
    if EXTENSION_KEY not in app.extensions:
        app.extensions[EXTENSION_KEY] = StreamSlots(
            total=int(app.config["SSE_MAX_STREAMS"]),
            per_client=int(app.config["SSE_MAX_STREAMS_PER_CLIENT"]),
            retry_after_s=int(app.config["RETRY_AFTER_S"]),
        )
    slots: StreamSlots = app.extensions[EXTENSION_KEY]
    return slots


def claim() -> Slot:
    """A slot for the current request's client, identified as the rate limiter does."""
    slots: StreamSlots = current_app.extensions[EXTENSION_KEY]
    return slots.claim(get_remote_address() or "unknown")


def slotted(open_stream: Callable[[], Response]) -> Response:
    """A stream that holds a slot until its response is closed; refused before any read.

    ``open_stream`` does the stream's first reads and returns its response; it runs
    only once the slot is taken, and the slot is given back if it raises.
    """
    slot = claim()
    try:
        response = open_stream()
    except BaseException:
        slot.release()
        raise
    response.call_on_close(slot.release)
    return response
