"""Durable accept (TASKRELAY_SUBMIT_REPLICAS): a 202 only once a real replica holds the write.

One primary and one replica (``REPLICAOF``), both real servers on loopback. A
replica frozen with SIGSTOP still holds its link open but acknowledges nothing,
which is what WAIT has to notice.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import keys
from tasks.connections import WEB_SOCKET_TIMEOUT_S
from tests.support import free_port, wait_until
from webapp import create_app
from webapp.durable_accept import DurableAcceptUnsupported

# Short, so that each refused accept costs the suite little.
TIMEOUT_MS = 300
# What a 503 may take beyond WAIT's own timeout: the request's other round trips.
ANSWER_MARGIN_S = 0.7
# How long after the web's socket timeout a frozen replica comes back.
LATE_REPLICA_S = 0.5
# Commands one accept sends, with room to spare: past this, a WAIT is missing.
MONITOR_LINES_MAX = 200


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory, redis_binary: str) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(
        port=free_port(),
        data_dir=tmp_path_factory.mktemp("primary"),
        durable=False,
        binary=redis_binary,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replica(
    primary: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, redis_binary: str
) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(
        port=free_port(),
        data_dir=tmp_path_factory.mktemp("replica"),
        durable=False,
        binary=redis_binary,
    )
    server.start()
    client = redis.Redis(port=server.port, decode_responses=True)
    client.replicaof("127.0.0.1", str(primary.port))
    wait_until(
        lambda: client.info("replication").get("master_link_status") == "up",
        timeout_s=15,
        what="the replica to sync with the primary",
    )
    client.close()
    yield server
    server.stop()


@pytest.fixture
def replica_client(replica: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis(port=replica.port, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def primary_client(primary: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis(port=primary.port, decode_responses=True)
    yield client
    client.close()


def _app(url: str, replicas: int) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "REDIS_URL": url,
            "SUBMIT_REPLICAS": replicas,
            "SUBMIT_REPLICAS_TIMEOUT_MS": TIMEOUT_MS,
        }
    )


@pytest.fixture
def durable(primary: EmbeddedRedis, replica: EmbeddedRedis) -> Iterator[FlaskClient]:
    app = _app(primary.url, 1)
    yield app.test_client()
    app.extensions["taskrelay"].close()


@pytest.fixture
def plain(primary: EmbeddedRedis, replica: EmbeddedRedis) -> Iterator[FlaskClient]:
    app = _app(primary.url, 0)
    yield app.test_client()
    app.extensions["taskrelay"].close()


@contextmanager
def frozen(server: EmbeddedRedis) -> Iterator[None]:
    """The server stopped by SIGSTOP: its sockets stay open, it answers nothing."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def _waits(client: redis.Redis) -> int:
    stats = client.info("commandstats").get("cmdstat_wait")
    return int(stats["calls"]) if stats else 0


def _timed(send: Any) -> tuple[Any, float]:
    started = time.monotonic()
    reply = send()
    return reply, time.monotonic() - started


def test_an_accepted_task_is_on_the_replica_when_its_202_arrives(
    durable: FlaskClient, replica_client: redis.Redis
) -> None:
    reply = durable.post("/api/tasks", json={"task": "consume", "args": [1]})

    assert reply.status_code == 202
    # Read at once from the replica: WAIT has confirmed it holds the record.
    assert replica_client.hget(keys.task_record(reply.get_json()["id"]), "task") == "consume"


def test_wait_runs_on_the_connection_that_ran_the_tasks_transaction(
    durable: FlaskClient, primary: EmbeddedRedis
) -> None:
    # WAIT counts only what its own connection wrote: on any other it confirms nothing.
    watcher = redis.Redis(port=primary.port, socket_timeout=5)
    last_exec_from = None
    with watcher.monitor() as monitor:
        reply = durable.post("/api/tasks", json={"task": "consume", "args": [6]})
        for _ in range(MONITOR_LINES_MAX):
            command = monitor.next_command()
            sender = (command["client_address"], command["client_port"])
            name = command["command"].split()[0].upper()
            if name == "EXEC":
                last_exec_from = sender
            elif name == "WAIT":
                break
        else:
            pytest.fail("no WAIT among the commands of a durable accept")
    watcher.close()

    assert reply.status_code == 202
    assert last_exec_from == sender


def test_a_task_is_503_within_the_timeout_when_the_replica_is_frozen_and_a_retry_finds_it(
    durable: FlaskClient, replica: EmbeddedRedis, primary_client: redis.Redis
) -> None:
    headers = {"Idempotency-Key": "durable-accept-frozen-replica"}
    body = {"task": "consume", "args": [2]}
    with frozen(replica):
        reply, took_s = _timed(lambda: durable.post("/api/tasks", json=body, headers=headers))

    assert reply.status_code == 503
    assert took_s < TIMEOUT_MS / 1000 + ANSWER_MARGIN_S
    assert reply.headers["Retry-After"]
    error = reply.get_json()["error"]
    assert error["code"] == "not_replicated"
    assert "0 of 1 replicas" in error["message"]
    assert "Idempotency-Key" in error["message"]
    # Kept on the primary, not undone: the retry answers the same task, once replicated.
    task_id = error["message"].split()[1]
    assert primary_client.hget(keys.task_record(task_id), "task") == "consume"
    again = durable.post("/api/tasks", json=body, headers=headers)
    assert again.status_code == 200
    assert again.get_json()["id"] == task_id


def test_a_wait_longer_than_the_socket_timeout_still_sees_a_late_replica(
    primary: EmbeddedRedis, replica: EmbeddedRedis, replica_client: redis.Redis
) -> None:
    # The web's sockets give up after WEB_SOCKET_TIMEOUT_S; WAIT's read gets its own bound.
    wait_ms = int((WEB_SOCKET_TIMEOUT_S + LATE_REPLICA_S + 1) * 1000)
    app = create_app(
        {
            "TESTING": True,
            "REDIS_URL": primary.url,
            "SUBMIT_REPLICAS": 1,
            "SUBMIT_REPLICAS_TIMEOUT_MS": wait_ms,
        }
    )
    thaw = threading.Timer(WEB_SOCKET_TIMEOUT_S + LATE_REPLICA_S, _thaw, args=(replica,))
    try:
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
        thaw.start()
        reply, took_s = _timed(
            lambda: app.test_client().post("/api/tasks", json={"task": "consume", "args": [8]})
        )
    finally:
        thaw.cancel()
        thaw.join()
        _thaw(replica)
        app.extensions["taskrelay"].close()

    assert reply.status_code == 202, reply.get_json()
    assert took_s > WEB_SOCKET_TIMEOUT_S
    assert replica_client.exists(keys.task_record(reply.get_json()["id"]))


def _thaw(server: EmbeddedRedis) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGCONT)


def test_a_channel_message_waits_for_the_replica_too(
    durable: FlaskClient, replica: EmbeddedRedis, replica_client: redis.Redis
) -> None:
    accepted = durable.post("/api/channels/durable-accept/messages", json={"data": 1})
    assert accepted.status_code == 202
    message_id = accepted.get_json()["id"]
    # The pending record is written first, then the message; one WAIT covers both.
    assert replica_client.hexists(keys.RELAY_PENDING, message_id)

    with frozen(replica):
        refused, took_s = _timed(
            lambda: durable.post("/api/channels/durable-accept/messages", json={"data": 2})
        )

    assert refused.status_code == 503
    assert took_s < TIMEOUT_MS / 1000 + ANSWER_MARGIN_S
    assert refused.get_json()["error"]["code"] == "not_replicated"


def test_a_workflow_waits_for_the_replica_too(
    durable: FlaskClient, replica: EmbeddedRedis, replica_client: redis.Redis
) -> None:
    body = {"type": "chain", "steps": [{"task": "consume", "args": [3]}]}
    accepted = durable.post("/api/workflows", json=body)
    assert accepted.status_code == 202
    step_task_id = accepted.get_json()["steps"][0]["task_id"]
    assert replica_client.hget(keys.task_record(step_task_id), "task") == "consume"

    with frozen(replica):
        refused = durable.post("/api/workflows", json=body)

    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "not_replicated"


def test_without_the_setting_a_frozen_replica_changes_nothing_and_no_wait_is_sent(
    plain: FlaskClient, replica: EmbeddedRedis, primary_client: redis.Redis
) -> None:
    plain.post("/api/tasks", json={"task": "consume", "args": [4]})  # declares the queue
    waits_before = _waits(primary_client)
    with frozen(replica):
        task = plain.post("/api/tasks", json={"task": "consume", "args": [5]})
        message = plain.post("/api/channels/durable-accept/messages", json={"data": 3})

    assert (task.status_code, message.status_code) == (202, 202)
    assert _waits(primary_client) == waits_before


def test_the_setting_is_refused_at_start_where_record_and_message_are_apart(
    redis_url: str,
) -> None:
    broker_url = redis_url.rsplit("/", 1)[0] + "/3"
    config = {
        "TESTING": True,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker_url,
        "SUBMIT_REPLICAS": 1,
    }
    with pytest.raises(DurableAcceptUnsupported, match="CELERY_BROKER_URL"):
        create_app(config)


@pytest.mark.parametrize(
    ("replicas", "timeout_ms"), [(-1, 1000), ("1", 1000), (1, 0), (True, 1000)]
)
def test_a_bad_replica_setting_is_refused_at_start(
    redis_url: str, replicas: Any, timeout_ms: Any
) -> None:
    config = {
        "TESTING": True,
        "REDIS_URL": redis_url,
        "SUBMIT_REPLICAS": replicas,
        "SUBMIT_REPLICAS_TIMEOUT_MS": timeout_ms,
    }
    with pytest.raises(DurableAcceptUnsupported, match="TASKRELAY_SUBMIT_REPLICAS"):
        create_app(config)
