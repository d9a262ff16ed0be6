"""Redis restarts, crashes and outages: what was acknowledged survives."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import keys
from tests.faults.conftest import WorkerFactory
from tests.faults.helpers import Stopwatch, runs, submit, wait_for_state, wait_started

pytestmark = pytest.mark.slow


def test_a_graceful_redis_restart_loses_no_queued_or_running_task(
    fault_redis: EmbeddedRedis,
    fault_client: FlaskClient,
    fault_worker: WorkerFactory,
    markers: Path,
) -> None:
    fault_worker(concurrency=1)
    running = submit(
        fault_client, "record_run", marker_dir=str(markers), name="in-flight", seconds=2
    )
    queued = [
        submit(fault_client, "record_run", marker_dir=str(markers), name=f"queued-{n}")
        for n in range(10)
    ]
    wait_started(markers, "in-flight")
    fault_redis.restart()  # SIGTERM: Redis writes its append-only file and exits
    for task_id in [running, *queued]:
        assert wait_for_state(fault_client, task_id, "SUCCESS", timeout_s=90)["state"] == "SUCCESS"
    assert runs(markers, "in-flight") >= 1
    assert all(runs(markers, f"queued-{n}") == 1 for n in range(10))


def test_a_redis_crash_loses_at_most_the_last_second_of_writes(
    fault_redis: EmbeddedRedis,
    fault_client: FlaskClient,
    fault_redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settled = [submit(fault_client, "consume", number=n) for n in range(50)]
    time.sleep(2.5)  # appendfsync everysec: these are on disk now
    recent = [submit(fault_client, "consume", number=n) for n in range(50)]
    fault_redis.kill()
    fault_redis.start()
    client = redis.Redis.from_url(fault_redis.url, decode_responses=True)
    surviving = {
        task_id for task_id in settled + recent if client.exists(keys.task_record(task_id))
    }
    queued = client.llen("tasks")
    client.close()
    assert set(settled) <= surviving
    lost_recent = len(set(recent) - surviving)
    with capsys.disabled():
        print(
            f"\n[measure] Redis SIGKILL: 50/50 tasks older than 2.5 s survived; "
            f"{50 - lost_recent}/50 submitted in the last instant survived; "
            f"{queued} messages queued"
        )
    assert queued >= len(settled)


def test_a_submit_while_redis_is_down_is_503_at_once_and_enqueues_nothing(
    fault_redis: EmbeddedRedis, fault_client: FlaskClient
) -> None:
    fault_redis.stop()
    clock = Stopwatch()
    response = fault_client.post("/api/tasks", json={"task": "consume", "args": [1]})
    assert response.status_code == 503
    assert clock.seconds() < 2.0
    assert response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "service_unavailable"
    fault_redis.start()
    client = redis.Redis.from_url(fault_redis.url)
    assert client.llen("tasks") == 0
    assert client.zcard(keys.TASK_INDEX) == 0
    client.close()
    # And the same web process works again without a restart.
    assert fault_client.post("/api/tasks", json={"task": "consume", "args": [1]}).status_code == 202


def test_a_web_that_accepted_tasks_before_a_redis_restart_accepts_the_next_at_once(
    fault_redis: EmbeddedRedis, fault_client: FlaskClient
) -> None:
    # The web keeps its producers bound to broker connections between requests
    # (tasks/celery_ext/bound_producers.py); a restart closes every one of them.
    for _ in range(3):
        assert fault_client.post("/api/tasks", json={"task": "noop"}).status_code == 202
    fault_redis.restart()
    clock = Stopwatch()
    response = fault_client.post("/api/tasks", json={"task": "noop"})
    assert response.status_code == 202, response.get_json()
    assert clock.seconds() < 2.0
    client = redis.Redis.from_url(fault_redis.url)
    try:
        assert client.exists(keys.task_record(response.get_json()["id"]))
        assert client.llen("tasks") == 4
    finally:
        client.close()
