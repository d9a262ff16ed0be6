"""End states sent without waiting (tasks/celery_ext/result_pipe.py), on a real Redis.

First the pipe alone, with the backend a worker uses: a state is stored as soon as it
is sent, before its reply is read; what Redis refused or a lost connection left
unknown is stored again on confirm; what cannot be stored raises there. Then a real
worker whose task's end cannot be stored: its message is not acknowledged, and the
task runs again once the end can be stored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery, states

from tasks import keys
from tasks.app_factory import create_celery_app
from tasks.celery_ext.result_pipe import ResultNotStored, ResultPipe, Sent
from tasks.names import celery_name
from tasks.queues import TASK_QUEUE
from tests.support import start_worker, stop, wait_until

# A worker of its own whose unacknowledged messages come back soon.
VISIBILITY_TIMEOUT_S = 3
OWN_DATABASE = 14
PAUSE_MS = 5_000
TASK_TIMEOUT_S = 30.0


@pytest.fixture
def app(redis_url: str) -> Iterator[Celery]:
    celery_app = create_celery_app(redis_url)
    yield celery_app
    celery_app.close()


def end(app: Celery, task_id: str, state: str = states.SUCCESS) -> Sent:
    encoded = app.backend.encoded_meta(task_id, 1, state)
    return Sent(task_id, encoded, state, [])


def stored_state(client: redis.Redis, task_id: str) -> str | None:
    raw = client.get(keys.celery_result(task_id))
    return None if raw is None else str(json.loads(raw)["status"])


def ready_pipe(app: Celery) -> ResultPipe:
    """A pipe whose script Redis knows (a first send is refused NOSCRIPT otherwise)."""
    pipe = ResultPipe(app.backend)
    pipe.send(end(app, str(uuid.uuid4())))
    pipe.confirm()
    return pipe


def test_a_sent_state_is_stored_before_its_reply_is_read(
    app: Celery, redis_client: redis.Redis
) -> None:
    pipe = ready_pipe(app)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    pipe.send(end(app, first))
    pipe.send(end(app, second, states.FAILURE))
    # No reply read yet, and Redis holds both already.
    wait_until(
        lambda: stored_state(redis_client, second) == states.FAILURE,
        timeout_s=5,
        what="the second state stored with no reply read",
    )
    assert stored_state(redis_client, first) == states.SUCCESS

    pipe.confirm()
    pipe.confirm()  # nothing left: a second confirm reads nothing
    assert stored_state(redis_client, first) == states.SUCCESS


def test_a_state_sent_after_redis_forgot_the_script_is_stored_on_confirm(
    app: Celery, redis_client: redis.Redis
) -> None:
    pipe = ready_pipe(app)
    redis_client.script_flush()
    task_id = str(uuid.uuid4())

    pipe.send(end(app, task_id))
    assert stored_state(redis_client, task_id) is None  # refused: NOSCRIPT
    pipe.confirm()

    assert stored_state(redis_client, task_id) == states.SUCCESS
    # Stored the ordinary way, which loaded the script again.
    assert redis_client.script_exists(app.backend.guarded_set_script().sha) == [True]


def test_a_state_that_cannot_be_stored_raises_on_confirm_and_the_others_are_stored(
    app: Celery, redis_client: redis.Redis
) -> None:
    pipe = ResultPipe(app.backend)
    refused, before, after = (str(uuid.uuid4()) for _ in range(3))
    redis_client.rpush(keys.celery_result(refused), "not a result")  # WRONGTYPE for GET

    for task_id in (before, refused, after):
        pipe.send(end(app, task_id))
    with pytest.raises(ResultNotStored, match=refused):
        pipe.confirm()

    assert stored_state(redis_client, before) == states.SUCCESS
    assert stored_state(redis_client, after) == states.SUCCESS
    assert redis_client.type(keys.celery_result(refused)) == "list"


def test_states_whose_connection_was_lost_before_confirm_are_stored_again(
    app: Celery, redis_client: redis.Redis
) -> None:
    pipe = ready_pipe(app)
    lost = str(uuid.uuid4())
    # Redis holds the script's call unread while writes are paused, and drops it
    # with its connection.
    redis_client.client_pause(PAUSE_MS, all=False)
    try:
        pipe.send(end(app, lost))
        redis_client.client_kill_filter(_type="normal", skipme=True)
    finally:
        redis_client.client_unpause()
    assert stored_state(redis_client, lost) is None

    pipe.confirm()

    assert stored_state(redis_client, lost) == states.SUCCESS


def test_the_pipe_takes_only_end_states_of_tasks_outside_workflows(app: Celery) -> None:
    pipe = ResultPipe(app.backend)

    class Request:
        chord = group = chain = callbacks = errbacks = None

    plain, in_a_chain = Request(), Request()
    in_a_chain.chain = [{"task": "next"}]  # type: ignore[assignment]

    assert pipe.takes(states.SUCCESS, plain)
    assert pipe.takes(states.FAILURE, plain)
    assert not pipe.takes(states.STARTED, plain)
    assert not pipe.takes(states.RETRY, plain)
    assert not pipe.takes(states.SUCCESS, in_a_chain)


@pytest.fixture
def own_database(redis_url: str) -> Iterator[tuple[str, redis.Redis]]:
    """A database of the session's Redis that no session worker consumes from."""
    url = f"{redis_url.rsplit('/', 1)[0]}/{OWN_DATABASE}"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    yield url, client
    client.flushdb()
    client.close()


def test_a_worker_does_not_acknowledge_a_task_whose_end_was_not_stored(
    own_database: tuple[str, redis.Redis], log_dir: Path
) -> None:
    url, redis_client = own_database
    app = create_celery_app(url)
    worker = start_worker(
        "tasks",
        url,
        log_dir,
        concurrency=1,
        env={"TASKRELAY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S)},
    )
    try:
        task_id = str(uuid.uuid4())
        result_key = keys.celery_result(task_id)
        redis_client.rpush(result_key, "not a result")  # its end cannot be stored
        app.send_task(celery_name("noop"), task_id=task_id, queue=TASK_QUEUE)

        wait_until(
            lambda: "acknowledgement(s) withheld" in worker.log_path.read_text(),
            timeout_s=TASK_TIMEOUT_S,
            what="the worker to withhold the task's acknowledgement",
        )
        assert any(
            json.loads(raw)[0]["headers"]["id"] == task_id for raw in redis_client.hvals("unacked")
        ), "the message is still in flight, not acknowledged"

        redis_client.delete(result_key)
        # Back on the queue after the visibility timeout, run again, stored this time.
        wait_until(
            lambda: stored_state(redis_client, task_id) == states.SUCCESS,
            timeout_s=TASK_TIMEOUT_S,
            what="the task run again and its end stored",
        )
        wait_until(
            lambda: not redis_client.hlen("unacked"),
            timeout_s=TASK_TIMEOUT_S,
            what="the message acknowledged",
        )
        assert worker.exit_code() is None, "the worker exited"
    finally:
        stop(worker)
        app.close()
