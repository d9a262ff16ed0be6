"""The start check the fetch makes (fetch.lua, tasks/celery_ext/start_check.py) and the
start record written with the state after it (tasks/celery_ext/deferred_start.py).

First on the transport alone, on a real kombu event loop and a Redis database of its
own: which messages are checked, what the check says, and that a live consumer
handing its messages back takes their deliveries back. Then through the API and the
session's real worker: a quick task's start goes with its result, a long one's is
written alone while it runs, and both read STARTED in their history.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from kombu import Consumer, Exchange, Producer, Queue
from kombu.asynchronous import Hub

from tasks import defaults, keys
from tasks.app_factory import create_celery_app
from tasks.celery_ext import start_check
from tasks.names import celery_name
from tests.integration.test_transport_event_loop import Turns, connected
from tests.support import wait_until

BROKER_DB = 13
QUEUE = Queue("t-start-check", Exchange("t-start-check", "direct"), routing_key="t-start-check")
POLL_S = 0.02
TASK_TIMEOUT_S = 30.0


def publish_task(producer: Producer, task_id: str, **headers: Any) -> None:
    producer.publish(
        {"n": task_id},
        exchange=QUEUE.exchange,
        routing_key=QUEUE.routing_key,
        declare=[QUEUE],
        headers={"id": task_id, "retries": 0, "eta": None, **headers},
    )


def deliveries(client: redis.Redis, task_id: str, attempt: int = 0) -> int:
    return int(client.hget(keys.task_record(task_id), f"deliveries:{attempt}") or 0)


def test_the_fetch_checks_due_tasks_with_records_and_a_closing_consumer_takes_them_back(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    due, revoked, countdown, unrecorded, own = (str(uuid.uuid4()) for _ in range(5))
    for task_id in (due, revoked, countdown):
        broker_redis.hset(keys.task_record(task_id), "state", "QUEUED")
    broker_redis.zadd(keys.REVOKED, {revoked: time.time()})
    received: dict[str, dict[str, Any]] = {}
    hub = Hub()
    try:
        with connected(broker_url) as consumer_side, connected(broker_url) as producer_side:
            consumer_side.transport.register_with_event_loop(consumer_side.connection, hub)
            producer = Producer(producer_side.default_channel, serializer="json")
            publish_task(producer, due)
            publish_task(producer, revoked)
            # Sent with a check of its own (as a retry's copy of its request's headers
            # is): only the fetch says what it checked, so the header goes.
            publish_task(
                producer,
                countdown,
                eta="2099-01-01T00:00:00+00:00",
                **{start_check.HEADER: f"1:0:0:{countdown}"},
            )
            publish_task(producer, unrecorded)
            # One of taskrelay's own, sent with Celery's API: no record until checked.
            publish_task(producer, own, task=celery_name("noop"))
            turns = Turns(hub, consumer_side)

            def hold(body: dict[str, Any], message: Any) -> None:
                received[body["n"]] = dict(message.headers)  # held, never acknowledged

            channel = consumer_side.default_channel
            with Consumer(channel, queues=[QUEUE], callbacks=[hold], accept=["json"]):
                turns.until(lambda: len(received) == 5, "all five messages")
            checks = {task_id: received[task_id].get(start_check.HEADER) for task_id in received}
            assert checks == {
                due: f"1:0:0:{due}",
                revoked: f"1:1:0:{revoked}",
                countdown: None,
                unrecorded: None,
                own: f"1:0:0:{own}",
            }
            assert deliveries(broker_redis, due) == 1
            assert deliveries(broker_redis, countdown) == 0
            assert not broker_redis.exists(keys.task_record(unrecorded))
            # The record the check started is bounded like every record.
            assert 0 < broker_redis.ttl(keys.task_record(own)) <= defaults.TASK_RECORD_TTL_S
            # The check travels with this worker's copy only: the queue's stays as sent.
            stored = broker_redis.hvals(channel.unacked_key)
            with_header = [raw for raw in stored if start_check.HEADER in raw]
            assert len(stored) == 5 and len(with_header) == 1 and countdown in with_header[0]
            # Closing hands the held messages back, unrun: no delivery killed a worker.
            channel.close()
        assert deliveries(broker_redis, due) == 0
        assert deliveries(broker_redis, revoked) == 0
        assert deliveries(broker_redis, own) == 0
        assert broker_redis.llen(QUEUE.name) == 5
    finally:
        hub.close()


# -- through the API and a real worker -------------------------------------------


@pytest.fixture
def results(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class PublishedStates:
    """Every state published on the result channels, by task id, as subscribers hear them."""

    def __init__(self, client: redis.Redis) -> None:
        self.by_task: dict[str, list[str]] = {}
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(keys.celery_result("*"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=POLL_S)
            if message is not None:
                meta = json.loads(message["data"])
                self.by_task.setdefault(meta["task_id"], []).append(meta["status"])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(TASK_TIMEOUT_S)
        self._pubsub.close()


@pytest.fixture
def published(results: redis.Redis) -> Iterator[PublishedStates]:
    listening = PublishedStates(results)
    yield listening
    listening.close()


def submit(client: FlaskClient, body: dict[str, Any]) -> str:
    answer = client.post("/api/tasks", json=body)
    assert answer.status_code == 202, answer.get_json()
    task_id: str = answer.get_json()["id"]
    return task_id


def history_states(client: FlaskClient, task_id: str) -> list[str]:
    return [entry["state"] for entry in client.get(f"/api/tasks/{task_id}").get_json()["history"]]


@pytest.mark.usefixtures("task_worker")
def test_a_quick_task_writes_its_start_with_its_result(
    client: FlaskClient, results: redis.Redis, published: PublishedStates
) -> None:
    task_id = submit(client, {"task": "consume", "args": [3]})
    doc = wait_until(
        lambda: (d := client.get(f"/api/tasks/{task_id}").get_json())["state"] == "SUCCESS" and d,
        timeout_s=TASK_TIMEOUT_S,
        what="the task to succeed",
    )
    assert history_states(client, task_id) == ["QUEUED", "STARTED", "SUCCESS"]
    history = client.get(f"/api/tasks/{task_id}").get_json()["history"]
    assert history[1]["at"] <= history[2]["at"], history
    assert history[1]["worker"] and doc["worker"] == history[1]["worker"], (doc, history)
    record = results.hgetall(keys.task_record(task_id))
    assert record[b"started_at"].decode() == history[1]["at"], record
    assert record[b"deliveries:0"] == b"1", record
    # Its SUCCESS was the one state published: STARTED went with it, not before it.
    wait_until(lambda: published.by_task.get(task_id), timeout_s=5, what="the publication")
    assert published.by_task[task_id] == ["SUCCESS"], published.by_task[task_id]


@pytest.mark.usefixtures("task_worker")
def test_a_task_sent_with_celerys_api_is_checked_at_fetch_and_writes_its_start_with_its_result(
    redis_url: str, results: redis.Redis, published: PublishedStates
) -> None:
    sender = create_celery_app(redis_url)
    try:
        task_id = str(sender.send_task(celery_name("consume"), args=[3], queue="tasks").id)
    finally:
        sender.close()
    record_key = keys.task_record(task_id)
    wait_until(
        lambda: published.by_task.get(task_id) and results.hexists(record_key, "started_at"),
        timeout_s=TASK_TIMEOUT_S,
        what="the task to succeed",
    )
    record = results.hgetall(record_key)
    # The fetch counted its delivery (a record it started), the worker asked nothing
    # before running it: its start went with SUCCESS, the one state published.
    assert record[b"deliveries:0"] == b"1" and record[b"worker"], record
    assert published.by_task[task_id] == ["SUCCESS"], published.by_task[task_id]


@pytest.mark.usefixtures("task_worker")
def test_a_long_task_reads_started_while_it_runs(
    client: FlaskClient, published: PublishedStates
) -> None:
    task_id = submit(client, {"task": "long_task", "kwargs": {"steps": 1, "delay_s": 1.5}})
    seen: list[str] = []

    def started_or_later() -> str | None:
        state: str = client.get(f"/api/tasks/{task_id}").get_json()["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        return state if state != "QUEUED" else None

    first = wait_until(started_or_later, timeout_s=TASK_TIMEOUT_S, what="the task to start")
    assert first == "STARTED", seen
    doc = client.get(f"/api/tasks/{task_id}").get_json()
    assert doc["worker"], doc
    wait_until(
        lambda: client.get(f"/api/tasks/{task_id}").get_json()["state"] == "SUCCESS",
        timeout_s=TASK_TIMEOUT_S,
        what="the task to succeed",
    )
    states = history_states(client, task_id)
    assert states[:2] == ["QUEUED", "STARTED"] and states[-1] == "SUCCESS", states
    assert states.count("STARTED") == 1, states
    # Written alone, the start stored and published STARTED before the task ended.
    assert published.by_task[task_id][0] == "STARTED", published.by_task[task_id]
