"""Workflows whose steps are redelivered, duplicated or lose their worker: a chord's
callback is sent exactly once, with each header result once, and nothing is lost."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import keys
from tasks.app_factory import create_celery_app
from tasks.names import celery_name
from tasks.queues import TASK_QUEUE
from tasks.workflows import dispatch, state
from tests.faults.conftest import FAULT_VISIBILITY_TIMEOUT_S, WorkerFactory
from tests.faults.helpers import Stopwatch, runs, starts
from tests.support import wait_until
from tests.workflow_tasks import received

pytestmark = pytest.mark.slow

# The fault workers load the tasks the steps name.
WORKER_ENV = {"TASKRELAY_TASK_MODULES": "tests.workflow_tasks"}
# Two header steps running at once in one worker: two prefork children.
TWO_AT_ONCE_ENV = {**WORKER_ENV, "TASKRELAY_WORKER_POOL": "prefork"}
HEADER_STEPS = 6
HEADER_STEP_S = 1.5


def submit(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/workflows", json=body)
    assert response.status_code == 202, response.get_json()
    doc: dict[str, Any] = response.get_json()
    return doc


def wait_for(client: FlaskClient, workflow_id: str, timeout_s: float) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        doc: dict[str, Any] = client.get(f"/api/workflows/{workflow_id}").get_json()
        return doc if doc["state"] in state.OUTCOMES else None

    return wait_until(ended, timeout_s=timeout_s, what=f"workflow {workflow_id} to end")


def deliver_again(redis_url: str, workflow_id: str, step: dict[str, Any], kwargs: Any) -> None:
    """Send a step's message once more, as a broker that redelivers it would."""
    app = create_celery_app(redis_url, publish_only=True)
    try:
        app.send_task(
            celery_name(step["task"]),
            kwargs=kwargs,
            task_id=step["task_id"],
            queue=TASK_QUEUE,
            headers={dispatch.HEADER: dispatch.header_value(workflow_id, str(step["index"]))},
        )
    finally:
        app.close()


def test_a_chord_whose_header_steps_are_killed_and_delivered_twice_calls_back_once(
    fault_client: FlaskClient,
    fault_worker: WorkerFactory,
    fault_redis: EmbeddedRedis,
    fault_redis_client: redis.Redis,
    markers: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    doomed = fault_worker(concurrency=2, env=TWO_AT_ONCE_ENV)
    header_kwargs = [
        {"marker_dir": str(markers), "name": f"h{n}", "value": n, "seconds": HEADER_STEP_S}
        for n in range(HEADER_STEPS)
    ]
    callback = {"task": "collect", "kwargs": {"marker_dir": str(markers), "name": "callback"}}
    body = {
        "type": "chord",
        "steps": [{"task": "record_step", "kwargs": kwargs} for kwargs in header_kwargs],
        "callback": callback,
    }
    doc = submit(fault_client, body)
    names = [kwargs["name"] for kwargs in header_kwargs]
    wait_until(
        lambda: sum(starts(markers, name) for name in names) >= 2,
        what="two header steps to start",
    )
    assert doomed.process is not None
    os.killpg(doomed.process.pid, signal.SIGKILL)
    clock = Stopwatch()
    killed = [name for name in names if starts(markers, name)]
    # Two header steps that had not started are delivered twice: both copies run.
    doubled = [name for name in names if name not in killed][:2]
    for name in doubled:
        index = names.index(name)
        deliver_again(fault_redis.url, doc["id"], doc["steps"][index], header_kwargs[index])
    fault_worker(concurrency=2, env=TWO_AT_ONCE_ENV)  # the survivor, started after the death

    done = wait_for(fault_client, doc["id"], timeout_s=90)
    recovered_s = clock.seconds()
    assert done["state"] == "SUCCESS", done["failed_step"]
    expected = list(range(HEADER_STEPS))
    assert done["result"] == expected
    # Every copy runs to its end, some after the callback was sent; then the broker is empty.
    wait_until(
        lambda: (
            all(runs(markers, name) == 2 for name in doubled)
            and fault_redis_client.llen(TASK_QUEUE) == 0
            and fault_redis_client.hlen("unacked") == 0
        ),
        timeout_s=60,
        what="every copy of the doubled steps to run, and the broker to empty",
    )
    assert received(markers, "callback") == [expected]  # once, each header result once
    callback_id = done["steps"][-1]["task_id"]
    assert fault_redis_client.hget(keys.task_record(callback_id), "deliveries:0") == "1"
    for name in killed:
        assert (starts(markers, name), runs(markers, name)) == (2, 1), name
    with capsys.disabled():
        print(
            f"\n[measure] chord of {HEADER_STEPS} with {len(killed)} header steps SIGKILLed "
            f"and {len(doubled)} delivered twice: one callback, SUCCESS {recovered_s} s after "
            f"the kill (visibility timeout {FAULT_VISIBILITY_TIMEOUT_S} s)"
        )


def test_a_step_whose_worker_died_after_claiming_the_next_sends_it_when_delivered_again(
    fault_client: FlaskClient,
    fault_worker: WorkerFactory,
    fault_redis_client: redis.Redis,
) -> None:
    # No worker yet: the first step's message waits in the queue.
    doc = submit(fault_client, {"type": "chain", "steps": [add(1, 2), add(y=10)]})
    workflow_id = doc["id"]
    plan = state.read_plan(fault_redis_client, workflow_id)
    assert plan is not None
    # A first delivery stored the step's result and claimed the next step, then its
    # worker died before sending it: the claim is all that is left.
    fault_redis_client.hset(keys.workflow_results(workflow_id), "0", "3")
    assert state.advance(fault_redis_client, workflow_id, plan, "0").ready == ("1",)
    assert state.advance(fault_redis_client, workflow_id, plan, "1").ready == ()
    # The message comes back (a worker takes it now): the step runs again and sends
    # what its first delivery claimed.
    fault_worker(concurrency=1, env=WORKER_ENV)
    done = wait_for(fault_client, workflow_id, timeout_s=30)
    assert done["state"] == "SUCCESS"
    assert done["result"] == 13
    assert not fault_redis_client.hlen(keys.workflow_pending(workflow_id))


def add(*args: int, **kwargs: int) -> dict[str, Any]:
    return {"task": "add", "args": list(args), "kwargs": kwargs}
