"""The cap on pending countdown/eta tasks: refused past it, freed as tasks start or are revoked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import keys
from tests.faults.conftest import WorkerFactory
from tests.faults.helpers import runs, wait_for_state
from webapp import create_app

CAP = 3


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
