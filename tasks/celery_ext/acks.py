# kombu is untyped: every call into it would need its own ignore.
# mypy: disable-error-code="no-untyped-call"
"""Acknowledgements for taskrelay's Redis transport: batched per event-loop turn.

An acknowledgement removes a message's in-flight records (``unacked`` and
``unacked_index``). kombu sends one ``MULTI`` per acknowledgement. Here a consumer on
an event loop collects them and sends them once per turn of the loop: inside the
next fetch script if one goes out in that turn, else in one pipeline. A consumer
that waits for a wake-up (its queues were empty) keeps them for the fetch that ends
the wait, at most a second later (transport.MAX_WAIT_S), instead of spending a round
trip on them: with a few tasks a second, the usual case end to end, that is one
round trip per task less. A late acknowledgement is harmless; one that never reaches
Redis only means the message is delivered again (acks are late: a task may run
twice if its worker dies before they go out, that second included). So
acknowledgements are sent at once, as kombu does, whenever nothing is sure to send
them soon: no event loop (``drain_events`` callers), or a channel already closed;
and a channel sends what it collected before it closes or hands its messages back.

The in-flight records of a fetched message are written by the fetch script itself,
so appending such a delivery only remembers it in memory.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Iterator
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from tasks.celery_ext import result_pipe, start_check
from tasks.connections import run_pipelined

logger = logging.getLogger(__name__)


class BatchedAckQoS(kombu_redis.QoS):
    # Read by tasks/celery_ext/result_pipe.py: take_unsent_acks confirms its sends first.
    confirms_results_before_acks = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Filled by any thread (a thread pool acknowledges from its threads), emptied
        # by the event loop; deque appends and pops are atomic.
        self._unsent_acks: deque[str] = deque()
        self._delivering_recorded = False

    @contextlib.contextmanager
    def delivering_recorded(self) -> Iterator[None]:
        """Deliveries in this block already have their records (the fetch wrote them)."""
        self._delivering_recorded = True
        try:
            yield
        finally:
            self._delivering_recorded = False

    def append(self, message: Any, delivery_tag: str) -> None:
        if self._delivering_recorded:
            virtual.QoS.append(self, message, delivery_tag)
        else:
            # A message that did not come through the fetch (a fanout delivery
            # consumed with acks, say) gets its records as kombu writes them.
            super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        self.forget(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if requeue:
            self.restore_by_tag(delivery_tag, leftmost=True)
        else:
            self.forget(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def forget(self, delivery_tag: str) -> None:
        """Remove a message's in-flight records: now, or with this turn's batch."""
        self._unsent_acks.append(delivery_tag)
        if not self.channel.acks_batched():
            self.flush_acks()

    def take_unsent_acks(self) -> list[str]:
        """The acks to send now, once the tasks' ends sent before them are stored.

        Should one not be stored, no ack goes: the messages come back after the
        visibility timeout and run again, as after a lost connection (which
        ``ResultNotStored`` is taken for).
        """
        try:
            result_pipe.confirm_before_acks(self)
        except result_pipe.ResultNotStored:
            withheld = len(self._take_all_acks())
            logger.warning("%d acknowledgement(s) withheld: a task's end was not stored", withheld)
            raise
        return self._take_all_acks()

    def _take_all_acks(self) -> list[str]:
        taken: list[str] = []
        with contextlib.suppress(IndexError):
            while True:
                taken.append(self._unsent_acks.popleft())
        return taken

    def give_back_acks(self, delivery_tags: list[str]) -> None:
        """Acks whose sending failed or is unknown: sent again, which is harmless."""
        self._unsent_acks.extend(delivery_tags)

    def flush_acks(self) -> None:
        delivery_tags = self.take_unsent_acks()
        if not delivery_tags:
            return
        try:
            self._remove_records(delivery_tags)
        except BaseException:
            self.give_back_acks(delivery_tags)
            raise

    def _remove_records(self, delivery_tags: list[str]) -> None:
        # Not kombu's MULTI: a full Redis (maxmemory, noeviction) refuses every
        # command queued in a transaction, even these that free memory.
        with self.channel.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            pipe.zrem(self.unacked_index_key, *delivery_tags)
            pipe.hdel(self.unacked_key, *delivery_tags)
            pipe.execute()

    def _take_back_deliveries(self) -> None:
        """The held messages go back unrun by a live worker: their fetch counted no
        delivery that killed a worker (tasks/celery_ext/start_check.py)."""
        commands = start_check.handed_back(self._delivered.values())
        if commands:
            with self.channel.conn_or_acquire() as client:
                run_pipelined(client, commands)

    def restore_unacked(self, client: Any = None) -> None:
        """Put the held messages back on their queues, or leave them in their records.

        Called as the channel closes. When Redis cannot be reached (the usual reason
        a channel closes with messages held: the broker connection was lost), the
        records stay as they are, and any worker's ``restore_visible`` puts each one
        back once, after the visibility timeout (see tasks/celery_ext/transport.py).
        """
        # Acknowledged messages must not go back: their records go first, and
        # kombu's list of deliveries forgets them before the held ones are restored.
        try:
            self.flush_acks()
            self._flush()
            self._take_back_deliveries()
            super().restore_unacked(client)
        except self.channel.connection_errors as exc:
            held = len(self._delivered)
            # Forgotten here so that nothing renews their leases: the records age
            # into the visibility timeout and come back from there.
            self._delivered.clear()
            logger.warning(
                "Redis is unreachable (%r): %d held message(s) stay in their in-flight "
                "records and are delivered again after the visibility timeout",
                exc,
                held,
            )
