"""The task path with RabbitMQ as the broker: quorum queues and publisher confirms.

Redis still holds results, records, streams and pub/sub; only the Celery messages
move. The key tests of test_tasks_api run here again, unchanged, against a worker
and a web app whose broker is a RabbitMQ virtual host made for this module alone
and deleted afterwards, so reruns start clean.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from taskrelay.processes import Child
from tests.integration import test_tasks_api as on_redis
from tests.support import start_worker, stop
from webapp import create_app
from webapp.services import services

RABBITMQ_HOST = os.environ.get("TASKRELAY_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("TASKRELAY_TEST_RABBITMQ_PORT", "5672"))
RABBITMQ_USER = "guest"
RABBITMQ_PASSWORD = "guest"  # RabbitMQ's default account, reachable from loopback only
RABBITMQCTL_TIMEOUT_S = 30

pytestmark = pytest.mark.usefixtures("task_worker")


def _unavailable(reason: str) -> None:
    # A developer's machine may have no RabbitMQ; CI always has one.
    if os.environ.get("CI") == "true":
        pytest.fail(f"RabbitMQ is required in CI: {reason}")
    pytest.skip(reason)


def _rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", *args],
        capture_output=True,
        text=True,
        timeout=RABBITMQCTL_TIMEOUT_S,
        check=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def rabbitmq_vhost() -> Iterator[str]:
    """A virtual host of this module's own on the local RabbitMQ."""
    try:
        socket.create_connection((RABBITMQ_HOST, RABBITMQ_PORT), timeout=2).close()
    except OSError as error:
        _unavailable(f"no RabbitMQ at {RABBITMQ_HOST}:{RABBITMQ_PORT} ({error})")
    if shutil.which("rabbitmqctl") is None or os.geteuid() != 0:
        _unavailable("creating a RabbitMQ virtual host needs rabbitmqctl as root")
    vhost = f"taskrelay-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, RABBITMQ_USER, ".*", ".*", ".*")
        yield vhost
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def amqp_url(rabbitmq_vhost: str) -> str:
    return (
        f"amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@{RABBITMQ_HOST}:{RABBITMQ_PORT}/"
        f"{rabbitmq_vhost}"
    )


@pytest.fixture(scope="module")
def task_worker(redis_url: str, log_dir: Path, amqp_url: str) -> Iterator[Child]:
    # The worker reads CELERY_BROKER_URL exactly as it does in production.
    worker = start_worker(
        "tasks",
        redis_url,
        log_dir,
        name=f"amqp-{uuid.uuid4().hex[:8]}@test",
        env={"CELERY_BROKER_URL": amqp_url},
    )
    yield worker
    stop(worker)


@pytest.fixture
def app(redis_url: str, amqp_url: str) -> Iterator[Flask]:
    flask_app = create_app({"TESTING": True, "REDIS_URL": redis_url, "CELERY_BROKER_URL": amqp_url})
    yield flask_app
    with flask_app.app_context():
        services().close()


# The task-path tests of the Redis broker, run again here with this module's fixtures.
test_a_submitted_task_is_queued_at_once_and_then_succeeds = (
    on_redis.test_a_submitted_task_is_queued_at_once_and_then_succeeds
)
test_progress_is_visible_by_polling = on_redis.test_progress_is_visible_by_polling
test_progress_is_pushed_through_server_sent_events = (
    on_redis.test_progress_is_pushed_through_server_sent_events
)
test_the_flaky_task_retries_then_succeeds = on_redis.test_the_flaky_task_retries_then_succeeds
test_a_task_that_always_fails_is_a_dead_letter = (
    on_redis.test_a_task_that_always_fails_is_a_dead_letter
)
test_a_task_revoked_before_it_starts_never_runs = (
    on_redis.test_a_task_revoked_before_it_starts_never_runs
)
test_revoking_a_finished_task_is_409 = on_redis.test_revoking_a_finished_task_is_409
test_the_same_idempotency_key_and_body_return_the_first_task = (
    on_redis.test_the_same_idempotency_key_and_body_return_the_first_task
)
test_the_same_idempotency_key_with_another_body_is_409 = (
    on_redis.test_the_same_idempotency_key_with_another_body_is_409
)
test_a_dead_letter_can_be_replayed_as_a_new_linked_task = (
    on_redis.test_a_dead_letter_can_be_replayed_as_a_new_linked_task
)
test_the_article_prodcons_trigger_enqueues_a_number_and_redirects_home = (
    on_redis.test_the_article_prodcons_trigger_enqueues_a_number_and_redirects_home
)


def test_the_task_queues_on_rabbitmq_are_quorum_queues(rabbitmq_vhost: str) -> None:
    listed = json.loads(
        _rabbitmqctl("list_queues", "-p", rabbitmq_vhost, "name", "type", "--formatter", "json")
    )
    types = {queue["name"]: queue["type"] for queue in listed}
    assert types["tasks"] == "quorum"


def test_a_countdown_is_held_by_rabbitmq_not_by_the_worker(
    client: Any, rabbitmq_vhost: str
) -> None:
    # Native delayed delivery parks the message in RabbitMQ's delay queues, so a
    # worker never holds an unacknowledged message for the whole countdown.
    task_id = on_redis.submit(client, {"task": "consume", "args": [11], "countdown": 2}).get_json()[
        "id"
    ]
    done = on_redis.wait_for_state(client, task_id, "SUCCESS")
    assert done["result"] == {"consumed": 11}
    listed = json.loads(
        _rabbitmqctl("list_exchanges", "-p", rabbitmq_vhost, "name", "--formatter", "json")
    )
    assert "celery_delayed_delivery" in {exchange["name"] for exchange in listed}


def test_an_unreachable_rabbitmq_is_503_within_two_seconds_with_nothing_enqueued(
    redis_url: str, redis_client: redis.Redis
) -> None:
    dead_broker = f"amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@127.0.0.1:1//"
    on_redis.assert_a_dead_broker_is_503_at_once_with_nothing_enqueued(
        redis_url, redis_client, dead_broker
    )


def test_a_countdown_of_one_second_is_accepted(client: Any) -> None:
    response = on_redis.submit(client, {"task": "consume", "args": [12], "countdown": 1})
    assert response.status_code == 202
    assert on_redis.wait_for_state(client, response.get_json()["id"], "SUCCESS")
