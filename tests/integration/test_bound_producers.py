"""Producers kept bound between publishes: lent again, past the limit from Celery's pool,
closed after a failed connection, and closed with the process's clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from tasks.app_factory import create_celery_app
from tasks.celery_ext import atomic_publish
from tasks.celery_ext.batched_send import send_in_batch
from tasks.celery_ext.bound_producers import BoundProducers
from tasks.queues import TASK_QUEUE

BROKER_DB = 12
CONSUME = "taskrelay.tasks.consume"


@pytest.fixture
def celery_app(broker_url: str) -> Iterator[Celery]:
    app = create_celery_app(
        broker_url, broker_url=broker_url, result_backend=broker_url, publish_only=True
    )
    app.finalize()
    yield app
    app.close()


def _publish(app: Celery, producer: object, number: int) -> None:
    with atomic_publish.transaction(producer):
        send_in_batch(
            app,
            producer,
            CONSUME,
            task_id=f"bound-{number}",
            kwargs={"number": number},
            queue=TASK_QUEUE,
            countdown=None,
            priority=None,
            declare=None,
        )


def _client_ids(broker: redis.Redis) -> set[int]:
    return {client["id"] for client in broker.client_list()}


def test_publishes_share_one_producer_and_its_connection(
    celery_app: Celery, broker_redis: redis.Redis
) -> None:
    producers = BoundProducers(celery_app, keep=2)
    with producers.lend() as first:
        _publish(celery_app, first, 0)
    clients_after_first = _client_ids(broker_redis)
    for number in range(1, 20):
        with producers.lend() as producer:
            assert producer is first
            assert producer.connection is first.connection
            _publish(celery_app, producer, number)
    # No connection was opened for the nineteen publishes after the first.
    assert _client_ids(broker_redis) <= clients_after_first
    assert broker_redis.llen(TASK_QUEUE) == 20
    assert first.connection.connected
    producers.close()
    assert not first.connection.connected


def test_loans_past_the_limit_come_from_celerys_pool_and_are_not_kept(
    celery_app: Celery, broker_redis: redis.Redis
) -> None:
    producers = BoundProducers(celery_app, keep=1)
    with producers.lend() as kept, producers.lend() as pooled:
        assert pooled is not kept
        _publish(celery_app, kept, 1)
        _publish(celery_app, pooled, 2)
    assert broker_redis.llen(TASK_QUEUE) == 2
    with producers.lend() as again, producers.lend() as pooled_again:
        assert again is kept
        assert pooled_again is not kept
    producers.close()


def test_a_producer_whose_connection_failed_is_closed_and_replaced(
    celery_app: Celery, broker_redis: redis.Redis
) -> None:
    producers = BoundProducers(celery_app, keep=1)
    lent = []

    def publish_then_lose_the_connection() -> None:
        with producers.lend() as producer:
            lent.append(producer)
            _publish(celery_app, producer, 1)
            raise redis.ConnectionError("the broker went away")

    with pytest.raises(redis.ConnectionError):
        publish_then_lose_the_connection()
    [failed] = lent
    assert not failed.connection.connected
    with producers.lend() as replacement:
        assert replacement is not failed
        _publish(celery_app, replacement, 2)
    assert broker_redis.llen(TASK_QUEUE) == 2
    producers.close()


def test_a_producer_whose_caller_failed_is_lent_again(celery_app: Celery) -> None:
    producers = BoundProducers(celery_app, keep=1)
    lent = []

    def fail_in_the_caller() -> None:
        with producers.lend() as producer:
            lent.append(producer)
            raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        fail_in_the_caller()
    [first] = lent
    with producers.lend() as again:
        assert again is first
    producers.close()


def test_a_producer_returned_after_close_is_closed(celery_app: Celery) -> None:
    producers = BoundProducers(celery_app, keep=1)
    with producers.lend() as producer:
        _publish(celery_app, producer, 1)
        producers.close()
    assert not producer.connection.connected
    # Closed, the next loan comes from Celery's pool.
    with producers.lend() as pooled:
        assert pooled is not producer
