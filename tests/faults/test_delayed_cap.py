"""The cap on pending countdown/eta tasks: refused past it, freed as tasks start or are revoked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import keys
from tests.faults.conftest import WorkerFactory
from tests.faults.helpers import runs, submit, wait_for_state
from tests.support import wait_until
from webapp import create_app

CAP = 3
# Long enough to fill the cap over HTTP while the retry waits.
RETRY_COUNTDOWN_S = 3.0


@pytest.fixture
def capped_client(fault_redis: EmbeddedRedis) -> Iterator[FlaskClient]:
    app: Flask = create_app(
        {"TESTING": True, "REDIS_URL": fault_redis.url, "MAX_DELAYED_TASKS": CAP}
    )
    yield app.test_client()
    app.extensions["taskrelay"].close()


def delayed(client: FlaskClient, countdown: float, **kwargs: object) -> tuple[int, dict]:
    response = client.post(
        "/api/tasks", json={"task": "record_run", "kwargs": kwargs, "countdown": countdown}
    )
    return response.status_code, response.get_json()


def test_delayed_tasks_past_the_cap_are_refused_and_tasks_due_now_are_not(
    capped_client: FlaskClient, markers: Path
) -> None:
    accepted = [
        delayed(capped_client, 3600, marker_dir=str(markers), name=f"d{n}") for n in range(CAP)
    ]
    assert [status for status, _ in accepted] == [202] * CAP
    status, body = delayed(capped_client, 3600, marker_dir=str(markers), name="over")
    assert status == 429
    assert body["error"]["code"] == "too_many_requests"
    assert "TASKRELAY_MAX_DELAYED_TASKS" in body["error"]["message"]
    immediate = capped_client.post(
        "/api/tasks",
        json={"task": "record_run", "kwargs": {"marker_dir": str(markers), "name": "now"}},
    )
    assert immediate.status_code == 202
    # A revoke frees its slot.
    assert capped_client.delete(f"/api/tasks/{accepted[0][1]['id']}").status_code in (200, 202)
    assert delayed(capped_client, 3600, marker_dir=str(markers), name="after-revoke")[0] == 202


def test_a_delayed_task_frees_its_slot_once_it_starts(
    capped_client: FlaskClient,
    fault_redis_client: redis.Redis,
    fault_worker: WorkerFactory,
    markers: Path,
) -> None:
    fault_worker(concurrency=1)
    short = [delayed(capped_client, 1, marker_dir=str(markers), name=f"s{n}") for n in range(CAP)]
    assert [status for status, _ in short] == [202] * CAP
    assert delayed(capped_client, 3600, marker_dir=str(markers), name="waits")[0] == 429
    for _, body in short:
        doc = wait_for_state(capped_client, body["id"], "SUCCESS", timeout_s=30)
        assert doc["state"] == "SUCCESS", doc
        # Removed by the start itself: trimming past-due entries happens only at a claim.
        assert fault_redis_client.zscore(keys.DELAYED_TASKS, body["id"]) is None
    assert all(runs(markers, f"s{n}") == 1 for n in range(CAP))
    assert delayed(capped_client, 3600, marker_dir=str(markers), name="later")[0] == 202


def test_a_task_retrying_with_a_countdown_holds_a_slot_until_it_runs_and_past_the_cap_still_retries(
    capped_client: FlaskClient,
    fault_redis_client: redis.Redis,
    fault_worker: WorkerFactory,
    markers: Path,
) -> None:
    fault_worker(concurrency=1)
    first = submit(capped_client, "retry_once", countdown=RETRY_COUNTDOWN_S)
    due_s = wait_until(
        lambda: fault_redis_client.zscore(keys.DELAYED_TASKS, first),
        timeout_s=10,
        what="the retry to be counted",
    )
    assert 0 < due_s - time.time() <= RETRY_COUNTDOWN_S
    # The retry waiting in a worker takes a slot from the tasks submitted over HTTP.
    filled = [
        delayed(capped_client, 3600, marker_dir=str(markers), name=f"f{n}") for n in range(CAP - 1)
    ]
    assert [status for status, _ in filled] == [202] * (CAP - 1)
    assert delayed(capped_client, 3600, marker_dir=str(markers), name="over")[0] == 429
    # A retry past the cap is sent all the same, and counted: never a failed task.
    second = submit(capped_client, "retry_once", countdown=1)
    wait_until(
        lambda: fault_redis_client.zscore(keys.DELAYED_TASKS, second),
        timeout_s=10,
        what="the retry past the cap to be counted",
    )
    for task_id in (first, second):
        doc = wait_for_state(capped_client, task_id, "SUCCESS", "FAILURE", timeout_s=30)
        assert (doc["state"], doc["result"], doc["retries"]) == ("SUCCESS", 2, 1), doc
        assert fault_redis_client.zscore(keys.DELAYED_TASKS, task_id) is None
    assert fault_redis_client.zcard(keys.DELAYED_TASKS) == CAP - 1
    assert delayed(capped_client, 3600, marker_dir=str(markers), name="room")[0] == 202
