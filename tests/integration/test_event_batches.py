"""A worker's task events reach their subscribers in batches of the flush timer's
size, not of Celery's 24 (tasks/celery_ext/event_batching.py), and none is lost.

The events are read as Flower's receiver gets them: the worker's `task.multi`
messages on the events exchange, here a Redis pub/sub channel.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tasks.app_factory import create_celery_app
from tasks.names import celery_name
from tasks.queues import TASK_QUEUE
from tests.support import start_worker, stop, wait_until

OWN_DATABASE = 15
TASKS = 300
# Celery sends its buffer whenever it holds this many events.
CELERYS_BUFFER_LIMIT = 24
TIMEOUT_S = 60.0


class EventListener:
    """Every `task.multi` message published on the events exchange, as a list of events."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe("*celeryev/task.multi*")
        self.batches: list[list[dict[str, object]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None:
                self.batches.append(_events(message["data"]))

    def succeeded(self) -> set[str]:
        return {
            str(event["uuid"])
            for batch in list(self.batches)
            for event in batch
            if event.get("type") == "task-succeeded"
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.pubsub.close()
        self.client.close()


def _events(raw: bytes) -> list[dict[str, object]]:
    """The events a kombu message published on Redis carries (its body base64-encoded)."""
    envelope = json.loads(raw)
    body = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    events: list[dict[str, object]] = json.loads(body)
    return events


@pytest.fixture
def own_database(redis_url: str) -> Iterator[str]:
    url = f"{redis_url.rsplit('/', 1)[0]}/{OWN_DATABASE}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
        yield url
        client.flushdb()


def test_a_burst_of_tasks_sends_its_events_in_batches_larger_than_celerys(
    own_database: str, log_dir: Path
) -> None:
    app = create_celery_app(own_database, result_backend="disabled")
    with app.producer_or_acquire() as producer:
        ids = {
            app.send_task(celery_name("noop"), queue=TASK_QUEUE, producer=producer).id
            for _ in range(TASKS)
        }
    listener = EventListener(own_database)
    worker = start_worker("tasks", own_database, log_dir, concurrency=1, extra_args=["-E"])
    try:
        wait_until(
            lambda: ids <= listener.succeeded(),
            timeout_s=TIMEOUT_S,
            what="a task-succeeded event for every task",
        )
        largest = max(len(batch) for batch in listener.batches)
        assert largest > CELERYS_BUFFER_LIMIT, [len(batch) for batch in listener.batches]
    finally:
        stop(worker)
        listener.close()
        app.close()
