"""taskrelay's prefork pool (tasks/celery_ext/pool.py) on a real worker: the pool's
pipes ask nothing of the event loop's poller that changes nothing, and a pool child
that is SIGKILLed, terminated by a revoke or past its hard time limit is still
replaced as in Celery, its task handled as before."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

import tests.faults.fault_tasks  # noqa: F401  (registers the fault tasks for HTTP)
from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child
from tasks.names import celery_name
from tasks.queues import TASK_QUEUE
from tests.faults.helpers import runs, starts, submit, wait_for_state, wait_started
from tests.integration.pool_probe import PROBE_FILE_ENV
from tests.support import running_redis, start_worker, stop, wait_until
from webapp import create_app

# Tasks one after the other, then at once (the pool holds the rest while its child is busy).
ROUNDS = 30
BURST = 60
# Each task's message goes in once: one ADD of the child's inqueue, one DEL after the write.
POLLER_CALLS_PER_TASK = 2
SOFT_TIME_LIMIT_S = 1
TASKS_PER_CHILD = 3


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def client(own_redis: EmbeddedRedis) -> Iterator[FlaskClient]:
    app = create_app({"TESTING": True, "REDIS_URL": own_redis.url})
    yield app.test_client()
    app.extensions["taskrelay"].close()


@pytest.fixture
def probe_file(tmp_path: Path) -> Path:
    return tmp_path / "poller-calls.json"


WorkerFactory = Callable[..., Child]


@pytest.fixture
def workers(own_redis: EmbeddedRedis, log_dir: Path, probe_file: Path) -> Iterator[WorkerFactory]:
    """Start task workers of one pool child that know the fault tasks and count their
    poller calls; every one is stopped at the end."""
    started: list[Child] = []

    def start(*extra_args: str) -> Child:
        child = start_worker(
            "tasks",
            own_redis.url,
            log_dir,
            concurrency=1,
            env={PROBE_FILE_ENV: str(probe_file), "TASKRELAY_WORKER_POOL": "prefork"},
            extra_args=[
                "--include",
                "tests.faults.fault_tasks,tests.integration.pool_probe",
                *extra_args,
            ],
        )
        started.append(child)
        return child

    yield start
    for child in started:
        stop(child)


@pytest.fixture
def worker(workers: WorkerFactory) -> Child:
    return workers()


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    """Where the fault tasks mark each start and each run."""
    path = tmp_path / "markers"
    path.mkdir()
    return path


class Probe:
    """The worker's poller calls as its probe last wrote them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.path.read_text())
        return doc

    def fresh(self) -> dict[str, Any]:
        """A snapshot written after this call: everything done before it is counted."""
        seen = wait_until(lambda: self.path.exists() and self.read(), what="the probe's file")
        return wait_until(
            lambda: (doc := self.read())["sequence"] > seen["sequence"] + 1 and doc,
            what="a new snapshot of the probe",
        )

    def replacement_of(self, child: dict[str, Any]) -> dict[str, Any]:
        """The pool's only child once it is another than ``child``."""

        def replaced() -> dict[str, Any] | None:
            children = self.read()["children"]
            return children[0] if children and children[0]["pid"] != child["pid"] else None

        return wait_until(replaced, what=f"a child in place of {child['pid']}")


@pytest.fixture
def probe(probe_file: Path) -> Probe:
    return Probe(probe_file)


def pipes(child: dict[str, Any]) -> dict[str, int]:
    return {name: child[name] for name in ("inqueue", "outqueue", "sentinel")}


def calls(doc: dict[str, Any], kind: str, fd: int) -> int:
    return int(doc[kind].get(str(fd), 0))


def run_tasks(client: FlaskClient, *, one_by_one: int, at_once: int) -> None:
    for _ in range(one_by_one):
        wait_for_state(client, submit_consume(client), "SUCCESS")
    burst = [submit_consume(client) for _ in range(at_once)]
    for task_id in burst:
        wait_for_state(client, task_id, "SUCCESS")


def submit_consume(client: FlaskClient) -> str:
    response = client.post("/api/tasks", json={"task": "consume", "args": [1]})
    assert response.status_code == 202, response.get_json()
    task_id: str = response.get_json()["id"]
    return task_id


def assert_quiet_pipes(client: FlaskClient, probe: Probe) -> dict[str, Any]:
    """Run tasks through the pool's only child; its pipes cost the poller only the
    inqueue's ADD and DEL per task, none of them a call that changes nothing."""
    run_tasks(client, one_by_one=2, at_once=2)  # whatever starting up registers
    before = probe.fresh()
    (child,) = before["children"]
    run_tasks(client, one_by_one=ROUNDS, at_once=BURST)
    after = probe.fresh()
    assert after["children"] == [child], "the pool's child changed under the test"
    tasks = ROUNDS + BURST
    for name, fd in pipes(child).items():
        no_change = calls(after, "no_change", fd) - calls(before, "no_change", fd)
        assert no_change == 0, f"{no_change} poller calls on the {name} (fd {fd}) changed nothing"
    in_fd = child["inqueue"]
    adds = calls(after, "adds", in_fd) - calls(before, "adds", in_fd)
    removes = calls(after, "removes", in_fd) - calls(before, "removes", in_fd)
    assert adds + removes <= POLLER_CALLS_PER_TASK * tasks
    for fd in (child["outqueue"], child["sentinel"]):
        assert calls(after, "adds", fd) == calls(before, "adds", fd)
        assert calls(after, "removes", fd) == calls(before, "removes", fd)
    return child


def test_the_pools_pipes_ask_the_poller_nothing_that_changes_nothing(
    client: FlaskClient, worker: Child, probe: Probe
) -> None:
    assert_quiet_pipes(client, probe)


def test_a_sigkilled_pool_child_is_replaced_and_its_task_runs_again(
    client: FlaskClient, worker: Child, probe: Probe, markers: Path
) -> None:
    (doomed,) = probe.fresh()["children"]
    task_id = submit(client, "record_run", marker_dir=str(markers), name="killed", seconds=2)
    wait_started(markers, "killed")
    os.kill(doomed["pid"], signal.SIGKILL)

    # Celery's WorkerLostError path with task_reject_on_worker_lost: the message goes
    # back on its queue and runs again, on the child that replaced the killed one.
    done = wait_for_state(client, task_id, "SUCCESS", timeout_s=60)
    assert starts(markers, "killed") == 2
    assert runs(markers, "killed") == 1
    replacement = probe.replacement_of(doomed)
    assert done["result"] == replacement["pid"]
    # The replacement's pipes, often on the numbers of the killed child's, are read
    # and written as quietly.
    assert assert_quiet_pipes(client, probe)["pid"] == replacement["pid"]
    assert worker.exit_code() is None


def test_a_running_task_revoked_with_terminate_ends_its_child_which_is_replaced(
    client: FlaskClient, worker: Child, probe: Probe, markers: Path
) -> None:
    (doomed,) = probe.fresh()["children"]
    task_id = submit(client, "record_run", marker_dir=str(markers), name="revoked", seconds=30)
    wait_started(markers, "revoked")
    wait_for_state(client, task_id, "STARTED")  # the API terminates a task it sees running
    assert client.delete(f"/api/tasks/{task_id}").status_code == 202

    probe.replacement_of(doomed)
    assert wait_for_state(client, task_id, "REVOKED")["state"] == "REVOKED"
    wait_for_state(client, submit_consume(client), "SUCCESS")
    assert runs(markers, "revoked") == 0
    assert starts(markers, "revoked") == 1


def test_a_task_past_its_soft_time_limit_is_stopped_by_the_pools_timer(
    client: FlaskClient, worker: Child, probe: Probe, markers: Path
) -> None:
    (child,) = probe.fresh()["children"]
    # The POST sends the configured limits (minutes); a client may send its own.
    celery = client.application.extensions["taskrelay"].celery
    sent = celery.send_task(
        celery_name("record_run"),
        kwargs={"marker_dir": str(markers), "name": "too-long", "seconds": 30},
        queue=TASK_QUEUE,
        soft_time_limit=SOFT_TIME_LIMIT_S,
        time_limit=SOFT_TIME_LIMIT_S + 30,
    )
    wait_until(lambda: sent.state == "FAILURE", what="the task's FAILURE")
    assert "SoftTimeLimitExceeded" in repr(sent.result)
    assert runs(markers, "too-long") == 0
    wait_for_state(client, submit_consume(client), "SUCCESS")
    assert probe.fresh()["children"] == [child]


def test_a_child_at_its_maximum_of_tasks_is_replaced_and_the_next_one_reads_its_pipes(
    client: FlaskClient, workers: WorkerFactory, probe: Probe
) -> None:
    workers("--max-tasks-per-child", str(TASKS_PER_CHILD))
    pids = set()
    for _ in range(4 * TASKS_PER_CHILD):
        wait_for_state(client, submit_consume(client), "SUCCESS")
        pids.update(child["pid"] for child in probe.read()["children"])
    assert len(pids) >= 3
