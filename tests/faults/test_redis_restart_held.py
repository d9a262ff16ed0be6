"""A graceful Redis restart while a worker holds messages: the worker lives on.

A worker holds messages it has not acknowledged: countdown tasks wait in its memory
until their time, and prefetched ones wait for a free process. When Redis goes away,
kombu hands held messages back as it closes the channel; that must neither kill the
worker nor deliver any message twice.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from tests.faults.conftest import WorkerFactory
from tests.faults.helpers import runs, starts, wait_for_state, wait_started
from tests.support import log_tail, wait_until

pytestmark = pytest.mark.slow

COUNTDOWN_S = 5
# The worker's whole prefetch window (concurrency 1) is held: one running task,
# three waiting prefetched for a free process, four waiting for their countdown.
PREFETCH_MULTIPLIER = 8
PREFETCHED = 3
COUNTDOWNS = PREFETCH_MULTIPLIER - 1 - PREFETCHED
# Long enough for the worker to see the connection drop and try again.
REDIS_DOWN_S = 2.0


def _submit(
    client: FlaskClient, markers: Path, name: str, seconds: float = 0, countdown: float = 0
) -> str:
    kwargs = {"marker_dir": str(markers), "name": name, "seconds": seconds}
    body = {"task": "record_run", "kwargs": kwargs, "countdown": countdown}
    response = client.post("/api/tasks", json=body)
    assert response.status_code == 202, response.get_json()
    task_id: str = response.get_json()["id"]
    return task_id


def test_a_worker_holding_countdown_and_prefetched_tasks_survives_a_graceful_redis_restart(
    fault_redis: EmbeddedRedis,
    fault_client: FlaskClient,
    fault_redis_client: redis.Redis,
    fault_worker: WorkerFactory,
    markers: Path,
) -> None:
    # A prefork worker fetches while its child runs a task (an inline one between tasks).
    worker = fault_worker(
        concurrency=1,
        env={"TASKRELAY_PREFETCH": str(PREFETCH_MULTIPLIER), "TASKRELAY_WORKER_POOL": "prefork"},
    )
    # The running one is still running when Redis goes away.
    ids = {"running": _submit(fault_client, markers, "running", seconds=REDIS_DOWN_S + 1)}
    wait_started(markers, "running")
    for name in (f"prefetched-{n}" for n in range(PREFETCHED)):
        ids[name] = _submit(fault_client, markers, name)
    countdowns = [f"countdown-{n}" for n in range(COUNTDOWNS)]
    for name in countdowns:
        ids[name] = _submit(fault_client, markers, name, countdown=COUNTDOWN_S)
    # The worker holds every message unacknowledged: each has its in-flight record.
    wait_until(
        lambda: fault_redis_client.hlen("unacked") == len(ids),
        timeout_s=10,
        what="the worker to hold every message",
    )

    fault_redis.stop()  # SIGTERM: Redis writes its append-only file and exits
    time.sleep(REDIS_DOWN_S)  # a real outage: nothing to wait on while Redis is away
    assert worker.exit_code() is None, log_tail(worker.log_path)
    fault_redis.start()

    def reconnected_or_dead() -> bool:
        log = worker.log_path.read_text()
        return (
            worker.exit_code() is not None
            or "Unrecoverable error" in log
            or (
                log.count("Connected to ") >= 2  # celery logs it on each (re)connection
            )
        )

    wait_until(reconnected_or_dead, timeout_s=30, what="the worker to reconnect")
    assert worker.exit_code() is None, log_tail(worker.log_path)
    assert "Unrecoverable error" not in worker.log_path.read_text(), log_tail(worker.log_path)
    for name, task_id in ids.items():
        doc = wait_for_state(fault_client, task_id, "SUCCESS", "FAILURE", timeout_s=40)
        assert doc["state"] == "SUCCESS", (name, doc)
    assert worker.exit_code() is None, log_tail(worker.log_path)
    # The running one may run again (its acknowledgement was lost with Redis);
    # every held one ran exactly once.
    assert runs(markers, "running") >= 1
    assert {name: starts(markers, name) for name in ids if name != "running"} == {
        name: 1 for name in ids if name != "running"
    }
