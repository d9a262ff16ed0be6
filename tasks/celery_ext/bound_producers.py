# kombu is untyped: every call into it would need its own ignore.
# mypy: disable-error-code="no-untyped-call"
"""Producers that stay bound to a broker connection between the publishes of one process.

A publish that is given no producer borrows one from Celery's pool
(``app.producer_or_acquire``), and kombu's ``ProducerPool`` gives the producer's
connection back to the connection pool when the producer returns, then takes a
connection again and binds the producer to it on the next loan: two pools, each
with its queue and locks, every time. Counted in instructions (callgrind, in
process): about 200,000 per loan, 6 % of a ``POST /api/tasks``.

Here a process keeps up to ``keep`` producers, each on a broker connection of its
own that it holds for its life, and lends them one publish at a time. The web
holds several at once only while several of its requests publish together (they
wait for one round trip, tasks/group_commit.py); past ``keep`` a loan comes from
Celery's pool as before. A producer whose publish failed on its connection is
closed rather than lent again: the next loan makes a new one, as the pool would
have bound a new connection. kombu's own retry (``retry=True``) still revives a
producer within a publish, as it does a pooled one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery

from tasks.connections import UNREACHABLE

# As many as Celery's pool holds by default (broker_pool_limit): enough for the
# requests of one web process that publish in the same round trip.
DEFAULT_KEEP = 10


class BoundProducers:
    """Lends producers kept bound to connections of their own; closes them at the end."""

    def __init__(self, app: Celery, keep: int = DEFAULT_KEEP) -> None:
        self._app = app
        self._keep = keep
        self._idle: list[Any] = []
        self._made = 0
        self._closed = False
        self._lock = threading.Lock()
        # A child forked from this process must not write on the parent's sockets.
        self._pid = os.getpid()

    @contextmanager
    def lend(self) -> Iterator[Any]:
        """A producer for the block; from Celery's pool when all kept ones are lent."""
        producer = self._take()
        if producer is None:
            with self._app.producer_or_acquire() as pooled:
                yield pooled
            return
        try:
            yield producer
        except BaseException as error:
            if _connection_failed(producer, error):
                self._discard(producer)
            else:
                self._give_back(producer)
            raise
        self._give_back(producer)

    def close(self) -> None:
        """Close the connections of the producers not lent out (those are closed on return)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._made -= len(idle)
            self._closed = True
        for producer in idle:
            _close(producer)

    def _take(self) -> Any:
        if self._pid != os.getpid():
            self._forget_parents()
        try:
            # list.pop is atomic under the GIL, and gevent switches only on I/O.
            return self._idle.pop()
        except IndexError:
            pass
        with self._lock:
            if self._closed or self._made >= self._keep:
                return None
            self._made += 1
        try:
            # Binds lazily: the connection opens on the first publish.
            return self._app.amqp.Producer(self._app.connection_for_write())
        except BaseException:
            with self._lock:
                self._made -= 1
            raise

    def _give_back(self, producer: Any) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(producer)
                return
        self._discard(producer)

    def _discard(self, producer: Any) -> None:
        with self._lock:
            self._made -= 1
        _close(producer)

    def _forget_parents(self) -> None:
        """In a forked child: drop the parent's producers without touching their sockets."""
        with self._lock:
            self._idle, self._made, self._pid = [], 0, os.getpid()


def _connection_failed(producer: Any, error: BaseException) -> bool:
    """Whether the error came from the producer's connection (then it is not lent again)."""
    connection = producer.__connection__
    failures = UNREACHABLE
    if connection is not None:
        failures += tuple(connection.connection_errors) + tuple(connection.channel_errors)
    return isinstance(error, failures)


def _close(producer: Any) -> None:
    connection = producer.__connection__
    if connection is not None:
        connection.release()
