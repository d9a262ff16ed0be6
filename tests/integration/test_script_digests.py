"""The task path calls its Lua steps by digest (EVALSHA), and a Redis that forgot them
(SCRIPT FLUSH here; a restart or a failover alike) still gets every step exactly once.

On a Redis of their own, so that INFO commandstats counts only these calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import keys, records
from tasks.queues import TASK_QUEUE, redis_lists
from tests.support import decoded_client, running_redis
from webapp import create_app
from webapp.services import services

SCRIPT_COMMANDS = ("eval", "evalsha")


@pytest.fixture(scope="module")
def script_redis(
    tmp_path_factory: pytest.TempPathFactory, redis_binary: str
) -> Iterator[EmbeddedRedis]:
    with running_redis(tmp_path_factory.mktemp("scripts"), binary=redis_binary) as server:
        yield server


@pytest.fixture
def script_client(script_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    with decoded_client(script_redis.url) as client:
        client.flushall()
        yield client


@pytest.fixture
def script_app(script_redis: EmbeddedRedis, script_client: redis.Redis) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "REDIS_URL": script_redis.url})
    yield app
    with app.app_context():
        services().close()


def _script_calls(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """(calls, failed calls) of EVAL and EVALSHA; a NOSCRIPT counts as a failed EVALSHA."""
    stats = client.info("commandstats")
    found = {}
    for name in SCRIPT_COMMANDS:
        entry = stats.get(f"cmdstat_{name}", {})
        found[name] = (int(entry.get("calls", 0)), int(entry.get("failed_calls", 0)))
    return found


def _calls_during(client: redis.Redis, before: dict[str, tuple[int, int]]) -> dict[str, int]:
    after = _script_calls(client)
    return {
        "eval": after["eval"][0] - before["eval"][0],
        "evalsha": after["evalsha"][0] - before["evalsha"][0],
        "noscript": after["evalsha"][1] - before["evalsha"][1],
    }


def _submit(web: FlaskClient) -> str:
    reply = web.post("/api/tasks", json={"task": "consume", "args": [1]})
    assert reply.status_code == 202, reply.get_json()
    task_id: str = reply.get_json()["id"]
    return task_id


def _history_states(client: redis.Redis, task_id: str) -> list[str]:
    return [
        json.loads(entry)["state"] for entry in client.lrange(keys.task_history(task_id), 0, -1)
    ]


def _event_states(client: redis.Redis, task_id: str) -> list[str]:
    events = [json.loads(fields["data"]) for _, fields in client.xrange(keys.TASK_EVENTS)]
    return [event["state"] for event in events if event["id"] == task_id]


def _queued_ids(client: redis.Redis) -> list[str]:
    messages = [raw for name in redis_lists(TASK_QUEUE) for raw in client.lrange(name, 0, -1)]
    return [json.loads(raw)["headers"]["id"] for raw in messages]


def _start(client: redis.Redis, task_id: str) -> records.Start:
    """What a task worker records when it starts the task (tasks/celery_ext/tracking.py)."""
    meta = records.StartedMeta(
        key=keys.celery_result(task_id),
        encoded=json.dumps({"status": "STARTED", "task_id": task_id, "result": {}}),
        ttl_s=600,
    )
    return records.mark_started(client, task_id, "w1@test", 0, meta, name="consume")


def _wait_stats(client: redis.Redis) -> int:
    """Starts counted in the per-minute wait figures, over every bucket."""
    total = 0
    for key in client.scan_iter(match=keys.TASK_STATS_PREFIX + "*"):
        total += sum(int(n) for field, n in client.hgetall(key).items() if "|wait|" in field)
    return total


def test_a_submission_after_redis_forgot_its_scripts_is_accepted_and_indexed_once(
    script_app: Flask, script_client: redis.Redis
) -> None:
    assert script_app.extensions["taskrelay"].submit_atomically  # one MULTI/EXEC
    web = script_app.test_client()
    _submit(web)  # the queue's first message declares it
    script_client.script_flush()
    before = _script_calls(script_client)

    task_id = _submit(web)

    assert _calls_during(script_client, before) == {"eval": 1, "evalsha": 1, "noscript": 1}
    assert script_client.hget(keys.task_record(task_id), "task") == "consume"
    assert _history_states(script_client, task_id) == ["QUEUED"]
    assert _event_states(script_client, task_id) == ["QUEUED"]
    assert script_client.zscore(keys.task_state_index("QUEUED"), task_id) is not None
    assert _queued_ids(script_client).count(task_id) == 1

    before = _script_calls(script_client)
    _submit(web)
    assert _calls_during(script_client, before) == {"eval": 0, "evalsha": 1, "noscript": 0}


def test_a_start_after_redis_forgot_its_scripts_is_recorded_once(
    script_app: Flask, script_client: redis.Redis
) -> None:
    web = script_app.test_client()
    task_id, next_id = _submit(web), _submit(web)
    script_client.script_flush()
    before = _script_calls(script_client)

    start = _start(script_client, task_id)

    assert _calls_during(script_client, before) == {"eval": 1, "evalsha": 1, "noscript": 1}
    assert start == records.Start(revoked=False, deliveries=1)
    stored = json.loads(script_client.get(keys.celery_result(task_id)) or "{}")
    assert stored["status"] == "STARTED"
    assert _history_states(script_client, task_id) == ["QUEUED", "STARTED"]
    assert _event_states(script_client, task_id) == ["QUEUED", "STARTED"]
    assert script_client.zscore(keys.task_state_index("STARTED"), task_id) is not None
    assert script_client.zscore(keys.task_state_index("QUEUED"), task_id) is None
    assert _wait_stats(script_client) == 1

    before = _script_calls(script_client)
    _start(script_client, next_id)
    assert _calls_during(script_client, before) == {"eval": 0, "evalsha": 1, "noscript": 0}


def test_a_revoke_after_redis_forgot_its_scripts_moves_the_task_once(
    script_app: Flask, script_client: redis.Redis
) -> None:
    task_id = _submit(script_app.test_client())
    script_client.script_flush()
    before = _script_calls(script_client)

    records.revoke(script_client, task_id, name="consume")

    assert _calls_during(script_client, before) == {"eval": 1, "evalsha": 1, "noscript": 1}
    assert _history_states(script_client, task_id) == ["QUEUED", "REVOKED"]
    assert _event_states(script_client, task_id) == ["QUEUED", "REVOKED"]
    assert script_client.zscore(keys.REVOKED, task_id) is not None
    assert script_client.zscore(keys.task_state_index("REVOKED"), task_id) is not None


def test_steady_submissions_and_starts_send_their_steps_by_digest(
    script_app: Flask, script_client: redis.Redis
) -> None:
    web = script_app.test_client()
    _start(script_client, _submit(web))  # Redis has seen both scripts once
    before = _script_calls(script_client)

    for _ in range(3):
        _start(script_client, _submit(web))

    assert _calls_during(script_client, before) == {"eval": 0, "evalsha": 6, "noscript": 0}
