"""The inline pool (tasks/celery_ext/inline_pool.py) on real workers: a task runs in the
worker's own process, and while it runs the keeper thread renews its lease, keeps the
worker listed as alive, and ends it at its time limits or on a revoke, as the prefork
pool's timer and ``terminate`` end a child's task."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child
from tasks.celery_ext import liveness
from tasks.celery_ext.keeper import EXIT_TASK_WOULD_NOT_STOP, KILL_GRACE_S
from tasks.names import celery_name
from tasks.queues import TASK_QUEUE
from tests.faults.conftest import WorkerFactory
from tests.faults.helpers import runs, starts, submit, wait_for_state, wait_started
from tests.support import decoded_client, wait_until

# Short leases, renewed every second: a task that outlives several of them while the
# worker's loop waits shows the keeper renewing them.
VISIBILITY_TIMEOUT_S = 3
LONG_TASK_S = 8
SOFT_TIME_LIMIT_S = 1
HARD_TIME_LIMIT_S = 1
# How long the heartbeats are counted while the long task runs.
HEARTBEAT_WINDOW_S = 5
# The mailbox thread connects again a second after it lost its connection.
MAILBOX_BACK_TIMEOUT_S = 15


@pytest.fixture
def workers(fault_worker: WorkerFactory) -> Callable[[], Child]:
    """Inline task workers with short leases that know the fault tasks."""

    def start() -> Child:
        return fault_worker(
            concurrency=1,
            env={
                "TASKRELAY_WORKER_POOL": "inline",
                "TASKRELAY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
            },
        )

    return start


def worker_pid(worker: Child) -> int:
    assert worker.process is not None
    return worker.process.pid


def test_a_task_runs_in_the_workers_own_process(
    fault_client: FlaskClient, workers: Callable[[], Child], markers: Path
) -> None:
    worker = workers()
    task_id = submit(fault_client, "record_run", marker_dir=str(markers), name="here")
    done = wait_for_state(fault_client, task_id, "SUCCESS")
    assert done["result"] == worker_pid(worker)
    assert [entry["state"] for entry in done["history"]] == ["QUEUED", "STARTED", "SUCCESS"]


def test_a_task_longer_than_its_lease_runs_once_and_its_worker_stays_listed(
    fault_client: FlaskClient,
    workers: Callable[[], Child],
    markers: Path,
    fault_redis: EmbeddedRedis,
) -> None:
    busy = workers()
    idle = workers()  # restores any message whose lease ran out, to run it again
    task_id = submit(
        fault_client, "record_run", marker_dir=str(markers), name="long", seconds=LONG_TASK_S
    )
    wait_started(markers, "long")
    # Well past the visibility timeout, with the busy worker's loop waiting on the task.
    time.sleep(2 * VISIBILITY_TIMEOUT_S)
    with decoded_client(fault_redis.url) as redis_client:
        listed = {w["name"]: w for w in liveness.workers(redis_client, time.time())}
    names = [name for name in listed if name.startswith("tasks-")]
    assert len(names) == 2 and all(listed[name]["alive"] for name in names), listed
    # The busy worker's beacon was written while its task ran (by the keeper).
    assert sorted(listed[name]["running"] for name in names) == [0, 1], listed
    done = wait_for_state(fault_client, task_id, "SUCCESS", timeout_s=30)
    assert done["result"] == worker_pid(busy)
    assert starts(markers, "long") == 1
    assert runs(markers, "long") == 1
    assert idle.exit_code() is None


def test_a_running_task_revoked_ends_and_its_worker_goes_on(
    fault_client: FlaskClient, workers: Callable[[], Child], markers: Path
) -> None:
    worker = workers()
    task_id = submit(
        fault_client, "record_run", marker_dir=str(markers), name="revoked", seconds=30
    )
    wait_started(markers, "revoked")
    wait_for_state(fault_client, task_id, "STARTED")
    started = time.monotonic()
    assert fault_client.delete(f"/api/tasks/{task_id}").status_code == 202

    next_id = submit(fault_client, "record_run", marker_dir=str(markers), name="next")
    assert wait_for_state(fault_client, next_id, "SUCCESS")["result"] == worker_pid(worker)
    assert time.monotonic() - started < 10, "the revoked task was not ended"
    assert wait_for_state(fault_client, task_id, "REVOKED")["state"] == "REVOKED"
    assert runs(markers, "revoked") == 0
    assert starts(markers, "revoked") == 1


@pytest.mark.parametrize(
    ("limits", "error"),
    [
        ({"soft_time_limit": SOFT_TIME_LIMIT_S, "time_limit": 30}, "SoftTimeLimitExceeded"),
        ({"time_limit": HARD_TIME_LIMIT_S}, "TimeLimitExceeded"),
    ],
)
def test_a_task_past_its_time_limit_fails_with_it_in_the_same_process(
    fault_client: FlaskClient,
    workers: Callable[[], Child],
    markers: Path,
    limits: dict[str, float],
    error: str,
) -> None:
    worker = workers()
    celery = fault_client.application.extensions["taskrelay"].celery
    sent = celery.send_task(
        celery_name("record_run"),
        kwargs={"marker_dir": str(markers), "name": "too-long", "seconds": 30},
        queue=TASK_QUEUE,
        **limits,
    )
    wait_until(lambda: sent.state == "FAILURE", timeout_s=20, what="the task's FAILURE")
    assert error in repr(sent.result)
    assert runs(markers, "too-long") == 0
    next_id = submit(fault_client, "record_run", marker_dir=str(markers), name="next")
    assert wait_for_state(fault_client, next_id, "SUCCESS")["result"] == worker_pid(worker)


def test_a_task_that_will_not_stop_takes_its_worker_process_down(
    fault_client: FlaskClient, workers: Callable[[], Child]
) -> None:
    worker = workers()
    celery = fault_client.application.extensions["taskrelay"].celery
    celery.send_task(
        celery_name("ignore_every_stop"),
        kwargs={"seconds": 60},
        queue=TASK_QUEUE,
        time_limit=HARD_TIME_LIMIT_S,
    )
    wait_until(
        lambda: worker.exit_code() is not None,
        timeout_s=HARD_TIME_LIMIT_S + KILL_GRACE_S + 20,
        what="the worker to exit",
    )
    assert worker.exit_code() == EXIT_TASK_WOULD_NOT_STOP


def test_the_worker_keeps_sending_heartbeats_while_a_task_runs(
    fault_client: FlaskClient,
    workers: Callable[[], Child],
    markers: Path,
    fault_redis: EmbeddedRedis,
) -> None:
    workers()
    with decoded_client(fault_redis.url) as redis_client:
        events = redis_client.pubsub(ignore_subscribe_messages=True)
        events.psubscribe("*celeryev*")  # Celery's event exchange, as Flower reads it
        try:
            submit(
                fault_client,
                "record_run",
                marker_dir=str(markers),
                name="long",
                seconds=LONG_TASK_S,
            )
            wait_started(markers, "long")
            seen_from = time.monotonic()
            heartbeats = 0
            while time.monotonic() - seen_from < HEARTBEAT_WINDOW_S:
                message = events.get_message(timeout=0.5)
                if message is not None and "worker.heartbeat" in str(message["data"]):
                    heartbeats += 1
            assert runs(markers, "long") == 0, "the task ended before the window closed"
        finally:
            events.close()
    # Celery's default interval is 2 s; Flower counts a worker offline after two.
    assert heartbeats >= 2


def test_a_busy_worker_answers_inspect_and_runs_control_commands_between_tasks(
    fault_client: FlaskClient, workers: Callable[[], Child], markers: Path
) -> None:
    worker = workers()
    node = worker.name
    celery = fault_client.application.extensions["taskrelay"].celery
    task_id = submit(fault_client, "record_run", marker_dir=str(markers), name="busy", seconds=4)
    wait_started(markers, "busy")

    # Questions are answered by the mailbox's thread while the task holds the loop.
    inspect = celery.control.inspect(destination=[node], timeout=2.0)
    assert inspect.ping() == {node: {"ok": "pong"}}
    active = inspect.active()
    assert active is not None and [task["id"] for task in active[node]] == [task_id]
    assert runs(markers, "busy") == 0, "the task ended before the questions were answered"

    wait_for_state(fault_client, task_id, "SUCCESS")
    # A command that changes the worker runs on its loop, which a pipe wakes at once.
    replies = celery.control.rate_limit(
        celery_name("record_run"), "100/s", destination=[node], reply=True, timeout=2.0
    )
    assert replies == [{node: {"ok": "new rate limit set successfully"}}]
    celery.control.shutdown(destination=[node])
    wait_until(lambda: worker.exit_code() is not None, timeout_s=20, what="the worker to stop")
    assert worker.exit_code() == 0


def test_remote_control_answers_again_after_its_own_connection_is_killed(
    fault_client: FlaskClient, fault_redis_client: redis.Redis, workers: Callable[[], Child]
) -> None:
    worker = workers()
    node = worker.name
    celery = fault_client.application.extensions["taskrelay"].celery
    inspect = celery.control.inspect(destination=[node], timeout=1.0)
    assert inspect.ping() == {node: {"ok": "pong"}}

    # The mailbox thread's subscription is the worker's only pub/sub connection.
    assert fault_redis_client.client_kill_filter(_type="pubsub") >= 1

    wait_until(
        lambda: inspect.ping() == {node: {"ok": "pong"}},
        timeout_s=MAILBOX_BACK_TIMEOUT_S,
        what="the worker to answer remote control again",
    )
    assert worker.exit_code() is None


def test_a_task_back_after_killing_its_worker_runs_in_a_child_until_it_is_buried(
    fault_client: FlaskClient, workers: Callable[[], Child], markers: Path
) -> None:
    first = workers()
    poison = submit(fault_client, "crash_worker")
    wait_until(lambda: first.exit_code() is not None, timeout_s=20, what="the first worker's end")
    # Its message comes back once its lease runs out; the second delivery and the
    # third run in forked children, which it kills instead of this worker.
    second = workers()
    done = wait_for_state(fault_client, poison, "FAILURE", timeout_s=60)
    assert done["dead_letter"] is True
    assert done["error"]["type"] == "PoisonTaskError"
    assert second.exit_code() is None
    healthy = submit(fault_client, "record_run", marker_dir=str(markers), name="after")
    assert wait_for_state(fault_client, healthy, "SUCCESS")["result"] == worker_pid(second)


def test_a_task_whose_worker_died_under_it_runs_again_in_a_child_and_succeeds(
    fault_client: FlaskClient, workers: Callable[[], Child], markers: Path
) -> None:
    first = workers()
    task_id = submit(fault_client, "record_run", marker_dir=str(markers), name="again", seconds=2)
    wait_started(markers, "again")
    os.kill(worker_pid(first), signal.SIGKILL)
    second = workers()
    done = wait_for_state(fault_client, task_id, "SUCCESS", timeout_s=30)
    child_pid = done["result"]
    assert child_pid not in (worker_pid(first), worker_pid(second))
    assert (starts(markers, "again"), runs(markers, "again")) == (2, 1)
    # Its result was stored by the child and its message acknowledged by the worker:
    # nothing comes back to run a third time.
    healthy = submit(fault_client, "record_run", marker_dir=str(markers), name="after")
    assert wait_for_state(fault_client, healthy, "SUCCESS")["result"] == worker_pid(second)
    time.sleep(VISIBILITY_TIMEOUT_S + 1)
    assert starts(markers, "again") == 2
