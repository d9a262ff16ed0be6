"""A frozen Redis (SIGSTOP): the web answers 503 within a bound, a running task still succeeds.

A stalled Redis accepts connections and never answers, so only timeouts notice it.
The web's are short (tasks/connections.py), a worker's result write is retried for
minutes (celeryconfig.result_write_retry_s); docs/reliability.md.

What a frozen Redis was sent, it runs when it thaws: a POST whose MULTI/EXEC went out
is answered as unconfirmed, naming its task, which then runs; a POST with an
Idempotency-Key whose claim went out sends its task when the request is sent again.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import keys
from tasks.connections import WEB_STALL_BOUND_S
from tests.faults.conftest import WorkerFactory
from tests.faults.helpers import Stopwatch, runs, submit, wait_for_state, wait_started
from tests.support import stop

pytestmark = pytest.mark.slow

FREEZE_S = 20.0
# The worker's result connection gives up on one reply after this many seconds,
# well inside the freeze, so the task's result write must be retried to succeed.
WORKER_REDIS_SOCKET_TIMEOUT_S = 3
# The task ends this long after the freeze began, while Redis is still frozen.
TASK_SECONDS = 4.0
# A warm stop of an idle worker takes about a second; a pool child left waiting for its
# result to be read held it up for 30 s.
WORKER_STOP_BOUND_S = 10.0


@contextmanager
def frozen(server: EmbeddedRedis) -> Iterator[None]:
    assert server.process is not None
    pid = server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def timed(call: object) -> tuple[float, int]:
    clock = Stopwatch()
    response = call()  # type: ignore[operator]
    return clock.seconds(), response.status_code


def test_a_frozen_redis_gets_fast_503s_and_a_task_ending_in_the_freeze_succeeds(
    fault_redis: EmbeddedRedis,
    fault_client: FlaskClient,
    fault_redis_client: redis.Redis,
    fault_worker: WorkerFactory,
    markers: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker = fault_worker(
        concurrency=1, env={"TASKRELAY_REDIS_SOCKET_TIMEOUT": str(WORKER_REDIS_SOCKET_TIMEOUT_S)}
    )
    running = submit(
        fault_client, "record_run", marker_dir=str(markers), name="across", seconds=TASK_SECONDS
    )
    wait_started(markers, "across")
    key = str(uuid.uuid4())
    sent: dict[str, Any] = {}

    def post(**headers: str) -> Any:
        response = fault_client.post(
            "/api/tasks", json={"task": "consume", "args": [1]}, headers=headers
        )
        sent[headers.get("Idempotency-Key", "none")] = response.get_json()["error"]
        return response

    with frozen(fault_redis):
        began = time.monotonic()
        answers = {
            "submit": timed(post),
            "submit with a key": timed(lambda: post(**{"Idempotency-Key": key})),
            "read": timed(lambda: fault_client.get(f"/api/tasks/{running}")),
            "ready": timed(lambda: fault_client.get("/readyz")),
            # A new stream reads where to start before it answers: the hub's client.
            "channel stream": timed(lambda: fault_client.get("/api/channels/news/events")),
            "pattern stream": timed(lambda: fault_client.get("/api/events?pattern=news.*")),
        }
        # The freeze must outlast the task and several of the worker's timeouts.
        time.sleep(max(0.0, FREEZE_S - (time.monotonic() - began)))
        assert runs(markers, "across") == 1, "the task should have ended during the freeze"
    with capsys.disabled():
        took = ", ".join(
            f"{what} {status} in {seconds:.2f} s" for what, (seconds, status) in answers.items()
        )
        print(f"\n[measure] Redis frozen {FREEZE_S:g} s: {took}")
    for what, (seconds, status) in answers.items():
        assert status == 503, what
        assert seconds < WEB_STALL_BOUND_S, f"{what} took {seconds:.1f} s"
    doc = wait_for_state(fault_client, running, "SUCCESS", "FAILURE", timeout_s=40)
    assert doc["state"] == "SUCCESS", doc
    assert fault_redis_client.exists(keys.dead_letter(running)) == 0

    # Its MULTI/EXEC was written before Redis stopped answering: not "nothing was
    # enqueued", but a task that may run, and does once Redis thaws.
    unconfirmed = sent["none"]
    assert "did not confirm" in unconfirmed["message"], unconfirmed
    assert wait_for_state(fault_client, unconfirmed["task_id"], "SUCCESS")["result"] == {
        "consumed": 1
    }
    # Only the key's claim went out: sent again, the request sends the claimed task.
    assert "nothing was enqueued" in sent[key]["message"], sent[key]
    again = fault_client.post(
        "/api/tasks", json={"task": "consume", "args": [1]}, headers={"Idempotency-Key": key}
    )
    assert again.status_code == 202, again.get_json()
    assert wait_for_state(fault_client, again.get_json()["id"], "SUCCESS")["result"] == {
        "consumed": 1
    }
    # A stop right after a thawed Redis handed the worker a task once waited 30 s for
    # the pool's child (tests/integration/test_pool_shutdown.py has that race alone).
    clock = Stopwatch()
    stop(worker)
    assert clock.seconds() < WORKER_STOP_BOUND_S, f"the worker took {clock.seconds()} s to stop"
