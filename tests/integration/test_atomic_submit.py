"""Accepting a task is one MULTI/EXEC holding its record and its message (when it can be);
a channel publish sends its relay task the same way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from tasks import keys
from tests.support import command_calls
from webapp import create_app


@pytest.fixture
def other_db_app(redis_url: str) -> Iterator[Flask]:
    broker_url = redis_url.rsplit("/", 1)[0] + "/3"
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "CELERY_BROKER_URL": broker_url})
    yield app
    app.extensions["taskrelay"].close()


def test_a_submit_writes_its_record_and_its_message_in_one_transaction(
    app: Flask, redis_client: redis.Redis
) -> None:
    assert app.extensions["taskrelay"].submit_atomically
    client = app.test_client()
    client.post("/api/tasks", json={"task": "consume", "args": [6]})  # declares the queue
    before = {name: command_calls(redis_client, name) for name in ("exec", "lpush", "hset")}

    reply = client.post("/api/tasks", json={"task": "consume", "args": [7]})

    assert reply.status_code == 202
    after = {name: command_calls(redis_client, name) for name in ("exec", "lpush", "hset")}
    # The INFO calls themselves are not in these counts.
    assert after["exec"] - before["exec"] == 1
    assert after["lpush"] - before["lpush"] == 1
    assert redis_client.hget(keys.task_record(reply.get_json()["id"]), "task") == "consume"


def test_a_channel_publish_sends_its_relay_task_in_one_transaction(
    app: Flask, redis_client: redis.Redis
) -> None:
    client = app.test_client()
    path = "/api/channels/atomic.publish/messages"
    client.post(path, json={"data": 0})  # declares the relay queue
    # The web's own commands: a relay worker of another test may be consuming the
    # relay queue meanwhile (its fetch and relay scripts), but sends none of these.
    counted = ("multi", "exec", "lpush")
    before = {name: command_calls(redis_client, name) for name in counted}

    reply = client.post(path, json={"data": {"n": 1}})

    assert reply.status_code == 202
    after = {name: command_calls(redis_client, name) for name in counted}
    # The relay task's message in a MULTI/EXEC of its own (send_task sent a bare LPUSH).
    assert {name: after[name] - before[name] for name in counted} == {
        "multi": 1,
        "exec": 1,
        "lpush": 1,
    }


def test_a_broker_in_another_database_gets_the_record_first_then_the_message(
    other_db_app: Flask, redis_client: redis.Redis
) -> None:
    assert not other_db_app.extensions["taskrelay"].submit_atomically

    reply = other_db_app.test_client().post("/api/tasks", json={"task": "consume", "args": [7]})

    assert reply.status_code == 202
    assert redis_client.exists(keys.task_record(reply.get_json()["id"]))
