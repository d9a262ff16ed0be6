"""Workers that die, stop, hang or start too early: no acknowledged task is lost."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from tests.faults.conftest import FAULT_VISIBILITY_TIMEOUT_S, WorkerFactory
from tests.faults.helpers import Stopwatch, runs, starts, submit, wait_for_state, wait_started
from tests.support import free_port, start_worker, stop, wait_until
from webapp import create_app

pytestmark = pytest.mark.slow


def test_a_task_on_a_sigkilled_worker_runs_again_on_another_within_the_bound(
    fault_client: FlaskClient,
    fault_worker: WorkerFactory,
    markers: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    doomed = fault_worker(concurrency=1)
    task_id = submit(fault_client, "record_run", marker_dir=str(markers), name="sigkill", seconds=3)
    wait_started(markers, "sigkill")
    assert doomed.process is not None
    os.killpg(doomed.process.pid, signal.SIGKILL)
    clock = Stopwatch()
    fault_worker(concurrency=1)  # a survivor, started after the death
    done = wait_for_state(fault_client, task_id, "SUCCESS", "FAILURE", timeout_s=60)
    recovered_s = clock.seconds()
    assert done["state"] == "SUCCESS"
    assert runs(markers, "sigkill") == 1  # the killed run never finished
    assert starts(markers, "sigkill") == 2
    with capsys.disabled():
        print(
            f"\n[measure] SIGKILLed worker's task finished elsewhere after {recovered_s} s "
            f"(visibility timeout {FAULT_VISIBILITY_TIMEOUT_S} s, task 3 s)"
        )


def test_a_long_task_on_a_live_worker_is_never_redelivered(
    fault_client: FlaskClient, fault_worker: WorkerFactory, markers: Path
) -> None:
    fault_worker(concurrency=1)
    fault_worker(concurrency=1)  # an idle worker that would grab a redelivered message
    seconds = FAULT_VISIBILITY_TIMEOUT_S * 3
    task_id = submit(
        fault_client, "record_run", marker_dir=str(markers), name="long", seconds=seconds
    )
    assert (
        wait_for_state(fault_client, task_id, "SUCCESS", timeout_s=seconds + 60)["state"]
        == "SUCCESS"
    )
    assert starts(markers, "long") == 1
    assert runs(markers, "long") == 1


def test_a_countdown_longer_than_the_visibility_timeout_runs_exactly_once(
    fault_client: FlaskClient, fault_worker: WorkerFactory, markers: Path
) -> None:
    fault_worker(concurrency=1)
    fault_worker(concurrency=1)
    countdown = FAULT_VISIBILITY_TIMEOUT_S * 3
    response = fault_client.post(
        "/api/tasks",
        json={
            "task": "record_run",
            "kwargs": {"marker_dir": str(markers), "name": "later"},
            "countdown": countdown,
        },
    )
    task_id = response.get_json()["id"]
    wait_for_state(fault_client, task_id, "SUCCESS", timeout_s=countdown + 60)
    time.sleep(FAULT_VISIBILITY_TIMEOUT_S)  # room for a wrongful second run to show up
    assert runs(markers, "later") == 1


def test_sigterm_lets_a_worker_finish_its_task_and_hand_back_the_rest(
    fault_client: FlaskClient, fault_worker: WorkerFactory, markers: Path
) -> None:
    worker = fault_worker(concurrency=1)
    first = submit(fault_client, "record_run", marker_dir=str(markers), name="warm-0", seconds=2)
    queued = [
        submit(fault_client, "record_run", marker_dir=str(markers), name=f"warm-{n}")
        for n in range(1, 6)
    ]
    wait_started(markers, "warm-0")
    stop(worker)  # SIGTERM: warm shutdown
    assert runs(markers, "warm-0") == 1, "the running task was not allowed to finish"
    assert wait_for_state(fault_client, first, "SUCCESS")["state"] == "SUCCESS"
    fault_worker(concurrency=1)
    for task_id in queued:
        assert wait_for_state(fault_client, task_id, "SUCCESS")["state"] == "SUCCESS"
    assert [runs(markers, f"warm-{n}") for n in range(6)] == [1] * 6


def test_a_poison_task_lands_in_the_dead_letters_and_the_worker_keeps_working(
    fault_client: FlaskClient, fault_worker: WorkerFactory, markers: Path
) -> None:
    # The prefork pool's way: each crash takes a child; the inline pool's is in
    # tests/faults/test_inline_pool.py.
    fault_worker(concurrency=1, env={"TASKRELAY_WORKER_POOL": "prefork"})
    poison = submit(fault_client, "crash_worker")
    done = wait_for_state(fault_client, poison, "FAILURE", timeout_s=90)
    assert done["dead_letter"] is True
    assert done["error"]["type"] == "PoisonTaskError"
    letters = fault_client.get("/api/deadletters").get_json()["dead_letters"]
    assert [letter["error"]["type"] for letter in letters if letter["id"] == poison] == [
        "PoisonTaskError"
    ]
    healthy = submit(fault_client, "record_run", marker_dir=str(markers), name="after-poison")
    assert wait_for_state(fault_client, healthy, "SUCCESS")["state"] == "SUCCESS"


def test_a_worker_started_before_redis_consumes_once_redis_is_up(
    tmp_path: Path, log_dir: Path, markers: Path
) -> None:
    server = EmbeddedRedis(port=free_port(), data_dir=tmp_path / "late-redis")
    worker = start_worker(
        "tasks",
        server.url,
        log_dir,
        concurrency=1,
        wait=False,
        extra_args=["--include", "tests.faults.fault_tasks"],
    )
    try:
        time.sleep(3)  # the worker is now retrying its connection
        assert worker.exit_code() is None
        server.start()
        app = create_app({"TESTING": True, "REDIS_URL": server.url})
        client = app.test_client()
        task_id = submit(client, "record_run", marker_dir=str(markers), name="late")
        assert wait_for_state(client, task_id, "SUCCESS", timeout_s=90)["state"] == "SUCCESS"
        app.extensions["taskrelay"].close()
    finally:
        stop(worker)
        server.stop()


def test_a_worker_that_stops_consuming_is_caught_by_readiness(
    fault_client: FlaskClient, fault_worker: WorkerFactory, fault_redis_client: redis.Redis
) -> None:
    fault_worker("relay", concurrency=1)
    worker = fault_worker(concurrency=1)
    assert fault_client.get("/readyz").status_code == 200
    assert worker.process is not None
    os.killpg(worker.process.pid, signal.SIGSTOP)  # alive, but consuming nothing
    try:
        not_ready = wait_until(
            lambda: (r := fault_client.get("/readyz")).status_code == 503 and r.get_json(),
            timeout_s=60,
            interval_s=0.5,
            what="readiness to notice the stopped worker",
        )
        assert not_ready["checks"]["queue:tasks"]["ok"] is False
        assert not_ready["checks"]["queue:relay"]["ok"] is True
    finally:
        os.killpg(worker.process.pid, signal.SIGCONT)
    wait_until(
        lambda: fault_client.get("/readyz").status_code == 200, timeout_s=60, what="readiness again"
    )
