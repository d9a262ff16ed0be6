"""A task sent into the web's open MULTI/EXEC is the message Celery's send_task sends."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
from celery import Celery

from tasks.app_factory import create_celery_app
from tasks.celery_ext import atomic_publish
from tasks.celery_ext.batched_send import send_in_batch
from tasks.queues import TASK_QUEUE

BROKER_DB = 11
CONSUME = "taskrelay.tasks.consume"
LIMITED = "tests.batched.limited"
EXPIRING = "tests.batched.expiring"


def _nothing() -> None:
    return None


@pytest.fixture
def celery_app(broker_url: str) -> Iterator[Celery]:
    app = create_celery_app(
        broker_url, broker_url=broker_url, result_backend=broker_url, publish_only=True
    )
    # Task classes with options of their own, which every call must carry.
    app.task(name=LIMITED, time_limit=30, soft_time_limit=20)(_nothing)
    app.task(name=EXPIRING, expires=60)(_nothing)
    # As in the web after its first request: send_task finds task classes only then.
    app.finalize()
    yield app
    app.close()


def _sent(app: Celery, broker: redis.Redis, send: Any) -> dict[str, Any]:
    """Send one message in a batch with ``send(producer)``; return it as Redis holds it."""
    with app.producer_or_acquire() as producer, atomic_publish.transaction(producer):
        send(producer)
    queued = [key for key in broker.keys(f"{TASK_QUEUE}*") if broker.type(key) == "list"]
    assert len(queued) == 1, queued
    raw = broker.lpop(queued[0])
    assert raw is not None and broker.llen(queued[0]) == 0
    message: dict[str, Any] = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    message["queue_key"] = queued[0]
    return message


TIMES = ("eta", "expires")


def _comparable(message: dict[str, Any]) -> tuple[dict[str, Any], dict[str, datetime | None]]:
    """The message without what differs between any two sends (its delivery tag), and
    its times (eta, expiry) apart, as they are counted from each send's own clock."""
    message["properties"].pop("delivery_tag")
    times = {name: message["headers"].pop(name) for name in TIMES}
    return message, {
        name: None if at is None else datetime.fromisoformat(at) for name, at in times.items()
    }


CASES = [
    pytest.param(CONSUME, {"number": 1}, None, None, id="plain"),
    pytest.param(CONSUME, {"number": 2}, 30, 3, id="countdown-and-priority"),
    pytest.param(LIMITED, {}, None, None, id="class-time-limits"),
    pytest.param(EXPIRING, {}, None, 5, id="class-expiry"),
]


@pytest.mark.parametrize(("name", "kwargs", "countdown", "priority"), CASES)
def test_the_batched_message_is_the_one_send_task_sends(
    celery_app: Celery,
    broker_redis: redis.Redis,
    name: str,
    kwargs: dict[str, Any],
    countdown: int | None,
    priority: int | None,
) -> None:
    task_id = "5b0f3c1e-0000-4000-8000-00000000000a"
    options: dict[str, Any] = {
        "task_id": task_id,
        "kwargs": kwargs,
        "queue": TASK_QUEUE,
        "countdown": countdown,
        "priority": priority,
        "declare": None,
    }

    by_celery = _sent(
        celery_app,
        broker_redis,
        lambda producer: celery_app.send_task(name, producer=producer, retry=True, **options),
    )
    batched = _sent(
        celery_app,
        broker_redis,
        lambda producer: send_in_batch(celery_app, producer, name, **options),
    )

    expected, expected_times = _comparable(by_celery)
    found, found_times = _comparable(batched)
    assert found["headers"] == expected["headers"]
    assert found == expected
    assert found["headers"]["id"] == task_id
    assert (found_times["eta"] is None) == (countdown is None)
    assert (found_times["expires"] is None) == (name != EXPIRING)
    for time_name, expected_at in expected_times.items():
        found_at = found_times[time_name]
        if expected_at is None or found_at is None:
            assert found_at == expected_at
        else:
            assert abs((found_at - expected_at).total_seconds()) < 5


def test_the_class_options_reach_the_message(celery_app: Celery, broker_redis: redis.Redis) -> None:
    # Guards the comparison above against two paths that both drop the options.
    message = _sent(
        celery_app,
        broker_redis,
        lambda producer: send_in_batch(
            celery_app,
            producer,
            LIMITED,
            task_id="5b0f3c1e-0000-4000-8000-00000000000b",
            kwargs={},
            queue=TASK_QUEUE,
            countdown=None,
            priority=None,
            declare=None,
        ),
    )
    assert message["headers"]["timelimit"] == [30, 20]
