"""A worker's start of a task (records.mark_started): one script call that writes the start
record, counts the delivery, reads the durable revoke, stores STARTED unless SUCCESS is
there, and moves the task in the indexes only if STARTED was stored.

On a Redis database of its own, through the real submission path first.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import defaults, delayed, keys, records
from tests.support import decoded_client

START_DB = 12
RESULT_TTL_S = 600


@pytest.fixture
def client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    with decoded_client(redis_server.url.rsplit("/", 1)[0] + f"/{START_DB}") as found:
        found.flushdb()
        yield found
        found.flushdb()


def _submitted(client: redis.Redis) -> str:
    task_id = str(uuid.uuid4())
    with client.pipeline(transaction=False) as pipe:
        records.save_submission(
            pipe, task_id, task="consume", args=[1], kwargs={}, submitted_at=records.utc_now_iso()
        )
        pipe.execute()
    return task_id


def _meta(task_id: str, status: str = "STARTED") -> records.StartedMeta:
    encoded = json.dumps({"status": status, "task_id": task_id, "result": {"pid": 1}})
    return records.StartedMeta(keys.celery_result(task_id), encoded, RESULT_TTL_S)


def _start(client: redis.Redis, task_id: str, attempt: int = 0, meta: bool = True) -> records.Start:
    found = _meta(task_id) if meta else None
    return records.mark_started(client, task_id, "w1@test", attempt, found, name="consume")


def _index_state(client: redis.Redis, task_id: str) -> str | None:
    for state in records.STATES:
        if client.zscore(keys.task_state_index(state), task_id) is not None:
            return state
    return None


def test_a_first_start_records_the_worker_stores_started_and_moves_the_index(
    client: redis.Redis,
) -> None:
    task_id = _submitted(client)

    start = _start(client, task_id)

    assert start == records.Start(revoked=False, deliveries=1)
    record = client.hgetall(keys.task_record(task_id))
    assert record["worker"] == "w1@test" and record["deliveries:0"] == "1"
    assert datetime.fromisoformat(record["started_at"]) <= datetime.now(UTC)
    assert 0 < client.ttl(keys.task_record(task_id)) <= defaults.TASK_RECORD_TTL_S
    assert json.loads(client.get(keys.celery_result(task_id)))["status"] == "STARTED"
    assert 0 < client.ttl(keys.celery_result(task_id)) <= RESULT_TTL_S
    assert _index_state(client, task_id) == "STARTED"


def test_deliveries_are_counted_per_attempt(client: redis.Redis) -> None:
    task_id = _submitted(client)

    counts = [_start(client, task_id).deliveries for _ in range(3)]
    retry = _start(client, task_id, attempt=1)

    assert counts == [1, 2, 3]
    assert retry.deliveries == 1


def test_a_revoked_task_is_reported_revoked_and_not_shown_started(client: redis.Redis) -> None:
    task_id = _submitted(client)
    records.revoke(client, task_id, name="consume")
    revoked_meta = client.get(keys.celery_result(task_id))

    assert _start(client, task_id).revoked
    # A start written after its revoke (one deferred past it) leaves REVOKED showing.
    assert client.get(keys.celery_result(task_id)) == revoked_meta
    assert _index_state(client, task_id) == "REVOKED"
    # It did not run: no start time, no worker.
    assert client.hmget(keys.task_record(task_id), "started_at", "worker") == [None, None]


def test_a_start_after_success_keeps_success_in_the_result_and_the_indexes(
    client: redis.Redis,
) -> None:
    task_id = _submitted(client)
    _start(client, task_id)
    success = _meta(task_id, "SUCCESS").encoded
    client.set(keys.celery_result(task_id), success)
    client.hset(keys.task_record(task_id), "index_state", "SUCCESS")

    start = _start(client, task_id)

    # A late redelivery is still counted (the poison check needs it), nothing else moves.
    assert start.deliveries == 2
    assert client.get(keys.celery_result(task_id)) == success
    assert client.hget(keys.task_record(task_id), "index_state") == "SUCCESS"


def test_without_a_started_meta_the_index_still_moves(client: redis.Redis) -> None:
    # Another result backend stores STARTED itself (tracking.TrackedTask._started_meta).
    task_id = _submitted(client)

    start = _start(client, task_id, meta=False)

    assert start == records.Start(revoked=False, deliveries=1)
    assert client.get(keys.celery_result(task_id)) is None
    assert _index_state(client, task_id) == "STARTED"


def test_a_started_countdown_task_leaves_the_delayed_count(client: redis.Redis) -> None:
    task_id = _submitted(client)
    now = datetime.now(UTC).timestamp()
    assert delayed.claim(client, task_id, now + 60, now, limit=10)

    _start(client, task_id)

    assert client.zscore(keys.DELAYED_TASKS, task_id) is None
