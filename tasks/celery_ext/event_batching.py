"""Celery's worker consumer, sending its task events in batches a few times a second.

Celery buffers task events (``task-received``, ``-started``, ``-succeeded``, ...) and
publishes what it holds on the next turn of the event loop, as one ``task.multi``
message. On a loaded worker a turn handles about one task, so each event still costs
a PUBLISH of its own, and Flower decodes one message per event. Here the buffer is
sent at most every ``EVENT_FLUSH_INTERVAL_S`` (or sooner, when Celery's own buffer
limit is reached), so Flower gets the same events, each at most that much later, in
a fraction of the messages. The buffer is sent before the consumer shuts down.
Celery also sends it whenever it holds 24 events: at a few hundred tasks a second
that was a publish every eight tasks, each with its own round trip and kombu's
per-message work in the worker, and a message for Flower to decode. The buffer's
bound is raised (``EventBufferLimit``), so the timer sends it.

Its blueprint also swaps Celery's remote-control step for one that answers while an
inline task runs (tasks/celery_ext/remote_control.py).
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from celery import bootsteps
from celery.worker.consumer import Consumer as CeleryConsumer

from tasks.celery_ext import remote_control

# The most a task event waits before it is published, in seconds.
EVENT_FLUSH_INTERVAL_S = 0.1
# Task events buffered before they are sent without waiting for the timer: about
# what a worker emits in EVENT_FLUSH_INTERVAL_S at several thousand tasks a second,
# one message of a few hundred kilobytes at most.
EVENT_BUFFER_LIMIT = 1_000


class Consumer(CeleryConsumer):  # type: ignore[misc]
    class Blueprint(CeleryConsumer.Blueprint):  # type: ignore[misc]
        default_steps = remote_control.in_place_of_celerys(CeleryConsumer.Blueprint.default_steps)

    # When the flush scheduled last is due; a later buffered event schedules another.
    _event_flush_due = 0.0

    def on_send_event_buffered(self) -> None:
        if self.hub is None:
            return
        now = monotonic()
        if now < self._event_flush_due:
            return  # a flush is already on the timer
        self._event_flush_due = now + EVENT_FLUSH_INTERVAL_S
        self.hub.call_later(EVENT_FLUSH_INTERVAL_S, self._flush_events)

    def shutdown(self) -> Any:
        self._flush_events()
        return super().shutdown()


class EventBufferLimit(bootsteps.StartStopStep):  # type: ignore[misc]
    """Raises Celery's bound on buffered task events (24) to EVENT_BUFFER_LIMIT, each
    time the events step makes its dispatcher."""

    requires = {"celery.worker.consumer.events:Events"}

    def start(self, consumer: Any) -> None:
        dispatcher = getattr(consumer, "event_dispatcher", None)
        if dispatcher is not None:
            dispatcher.buffer_limit = EVENT_BUFFER_LIMIT
