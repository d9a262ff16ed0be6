"""The tasks API through Flask's client, against a real Redis and real workers."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from taskrelay import sse_client
from tasks import keys
from tests.sse_reader import flask_lines
from tests.support import wait_until
from webapp import create_app, idempotency
from webapp.tasks.request import fingerprint

pytestmark = pytest.mark.usefixtures("task_worker")


def submit(client: FlaskClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/api/tasks", json=body, headers=headers)


def wait_for_state(
    client: FlaskClient, task_id: str, *states: str, timeout_s: float = 30
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        doc = client.get(f"/api/tasks/{task_id}").get_json()
        return doc if doc["state"] in states else None

    return wait_until(probe, timeout_s=timeout_s, what=f"task {task_id} to reach {states}")


def test_a_submitted_task_is_queued_at_once_and_then_succeeds(client: FlaskClient) -> None:
    response = submit(client, {"task": "consume", "args": [7]})
    assert response.status_code == 202
    body = response.get_json()
    assert body["state"] == "QUEUED"
    assert body["task"] == "consume"
    assert response.headers["Location"] == f"/api/tasks/{body['id']}"
    assert body["links"] == {
        "self": f"/api/tasks/{body['id']}",
        "events": f"/api/tasks/{body['id']}/events",
    }
    done = wait_for_state(client, body["id"], "SUCCESS")
    assert done["result"] == {"consumed": 7}
    assert done["started_at"] and done["finished_at"] and done["worker"]
    assert done["error"] is None and done["dead_letter"] is False


def test_an_id_never_submitted_is_404_not_pending(client: FlaskClient) -> None:
    response = client.get(f"/api/tasks/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_progress_is_visible_by_polling(client: FlaskClient) -> None:
    task_id = submit(
        client, {"task": "long_task", "kwargs": {"steps": 4, "delay_s": 0.4}}
    ).get_json()["id"]
    progress = wait_for_state(client, task_id, "PROGRESS")["progress"]
    assert progress["total"] == 4 and 1 <= progress["current"] <= 4
    assert wait_for_state(client, task_id, "SUCCESS")["result"] == {"steps": 4}


def test_progress_is_pushed_through_server_sent_events(client: FlaskClient) -> None:
    task_id = submit(
        client, {"task": "long_task", "kwargs": {"steps": 3, "delay_s": 0.3}}
    ).get_json()["id"]
    response = client.get(f"/api/tasks/{task_id}/events", buffered=False)
    assert response.mimetype == "text/event-stream"
    states = []
    for event in sse_client.parse(flask_lines(response)()):
        assert event.event == "state"
        states.append(json.loads(event.data))
    response.close()
    assert states[0]["state"] in ("QUEUED", "STARTED", "PROGRESS")
    assert states[-1]["state"] == "SUCCESS"
    currents = [s["progress"]["current"] for s in states if s["state"] == "PROGRESS"]
    assert currents, "no PROGRESS event was streamed"
    assert currents == sorted(currents)


def test_the_flaky_task_retries_then_succeeds(client: FlaskClient) -> None:
    task_id = submit(client, {"task": "flaky", "kwargs": {"failures": 2}}).get_json()["id"]
    done = wait_for_state(client, task_id, "SUCCESS", "FAILURE", timeout_s=60)
    assert done["state"] == "SUCCESS"
    assert done["retries"] == 2
    assert done["result"] == {"attempts": 3}


def test_a_task_that_always_fails_is_a_dead_letter(client: FlaskClient) -> None:
    task_id = submit(client, {"task": "always_fails", "kwargs": {"message": "boom"}}).get_json()[
        "id"
    ]
    done = wait_for_state(client, task_id, "FAILURE")
    assert done["dead_letter"] is True
    assert done["error"]["type"] == "DeliberateFailure"
    assert done["error"]["message"] == "boom"
    letters = client.get("/api/deadletters").get_json()["dead_letters"]
    assert task_id in [letter["id"] for letter in letters]


def test_a_task_revoked_before_it_starts_never_runs(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    task_id = submit(client, {"task": "consume", "args": [1], "countdown": 2}).get_json()["id"]
    response = client.delete(f"/api/tasks/{task_id}")
    assert response.status_code == 202
    assert response.get_json()["state"] == "REVOKED"
    time.sleep(3.5)  # past the countdown: a worker would have run it by now
    doc = client.get(f"/api/tasks/{task_id}").get_json()
    assert doc["state"] == "REVOKED"
    assert doc["started_at"] is None
    assert redis_client.hget(keys.task_record(task_id), "started_at") is None


def test_revoking_a_finished_task_is_409(client: FlaskClient) -> None:
    task_id = submit(client, {"task": "consume", "args": [2]}).get_json()["id"]
    wait_for_state(client, task_id, "SUCCESS")
    response = client.delete(f"/api/tasks/{task_id}")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"


def test_the_same_idempotency_key_and_body_return_the_first_task(client: FlaskClient) -> None:
    key = str(uuid.uuid4())
    first = submit(client, {"task": "consume", "args": [3]}, **{"Idempotency-Key": key})
    again = submit(client, {"task": "consume", "args": [3]}, **{"Idempotency-Key": key})
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]


def test_a_key_whose_first_request_never_sent_its_task_sends_it_when_sent_again(
    client: FlaskClient, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a request leaves when Redis took its claim and then stopped answering."""
    monkeypatch.setattr(idempotency, "IN_FLIGHT_S", 0.5)
    key, body, first_id = str(uuid.uuid4()), {"task": "consume", "args": [6]}, str(uuid.uuid4())
    # The claim's age counts from when it was made, so the clock starts before it.
    started = time.monotonic()
    claimed = idempotency.claim_first(
        redis_client, keys.idempotency(key), fingerprint(body), first_id, "task_id"
    )
    assert claimed is None
    again = submit(client, body, **{"Idempotency-Key": key})
    # It waited for the claim to outlive a request in flight, then sent the same task.
    assert time.monotonic() - started >= 0.5
    assert again.status_code == 202, again.get_json()
    assert again.get_json()["id"] == first_id
    assert wait_for_state(client, first_id, "SUCCESS")["result"] == {"consumed": 6}
    replayed = submit(client, body, **{"Idempotency-Key": key})
    assert (replayed.status_code, replayed.get_json()["id"]) == (200, first_id)


def test_the_same_idempotency_key_with_another_body_is_409(client: FlaskClient) -> None:
    key = str(uuid.uuid4())
    assert (
        submit(client, {"task": "consume", "args": [4]}, **{"Idempotency-Key": key}).status_code
        == 202
    )
    response = submit(client, {"task": "consume", "args": [5]}, **{"Idempotency-Key": key})
    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "Idempotency-Key"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": "consume", "args": ["seven"]}, "number"),
        ({"task": "consume", "args": [True]}, "number"),
        ({"task": "consume"}, "number"),
        ({"task": "consume", "args": [1, 2]}, "args"),
        ({"task": "consume", "kwargs": {"nuber": 1}}, "nuber"),
        ({"task": "consume", "args": {"number": 1}}, "args"),
        ({"task": "long_task", "kwargs": {"steps": 0}}, "steps"),
        ({"task": "long_task", "kwargs": {"delay_s": "slow"}}, "delay_s"),
        ({"task": "consume", "args": [1], "countdown": -1}, "countdown"),
        ({"task": "consume", "args": [1], "eta": "tomorrow"}, "eta"),
        ({"task": "consume", "args": [1], "priority": 12}, "priority"),
        ({"task": "consume", "args": [1], "colour": "blue"}, "colour"),
        ({"task": 5}, "task"),
        ({}, "task"),
    ],
)
def test_a_bad_field_is_400_naming_the_field(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    response = submit(client, body)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "bad_request"
    assert error["field"] == field
    assert error["message"]


def test_malformed_json_is_400(client: FlaskClient) -> None:
    response = client.post(
        "/api/tasks", data='{"task": "consume",', content_type="application/json"
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.get_json()["error"]["message"]


def test_a_body_that_is_not_an_object_is_400(client: FlaskClient) -> None:
    response = client.post("/api/tasks", data="[1, 2]", content_type="application/json")
    assert response.status_code == 400


def test_a_body_that_is_not_json_is_415(client: FlaskClient) -> None:
    response = client.post(
        "/api/tasks", data="task=consume", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"


def test_an_unknown_task_is_404_listing_the_known_ones(client: FlaskClient) -> None:
    response = submit(client, {"task": "make_coffee"})
    assert response.status_code == 404
    message = response.get_json()["error"]["message"]
    assert "make_coffee" in message
    for known in ("consume", "long_task", "flaky"):
        assert known in message


def test_a_body_over_the_limit_is_413(client: FlaskClient) -> None:
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    big = json.dumps({"task": "consume", "args": ["x" * limit]})
    response = client.post("/api/tasks", data=big, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def assert_a_dead_broker_is_503_at_once_with_nothing_enqueued(
    redis_url: str, redis_client: redis.Redis, dead_broker: str
) -> None:
    """Shared by the Redis and the RabbitMQ runs of the task path."""
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "CELERY_BROKER_URL": dead_broker})
    key = str(uuid.uuid4())
    index_before = redis_client.zcard(keys.TASK_INDEX)
    started = time.monotonic()
    response = app.test_client().post(
        "/api/tasks", json={"task": "consume", "args": [1]}, headers={"Idempotency-Key": key}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 2.0
    assert int(response.headers["Retry-After"]) > 0
    assert response.get_json()["error"]["code"] == "service_unavailable"
    assert redis_client.zcard(keys.TASK_INDEX) == index_before
    assert redis_client.get(keys.idempotency(key)) is None
    app.extensions["taskrelay"].close()


def test_an_unreachable_broker_is_503_within_two_seconds_with_nothing_enqueued(
    redis_url: str, redis_client: redis.Redis
) -> None:
    assert_a_dead_broker_is_503_at_once_with_nothing_enqueued(
        redis_url, redis_client, "redis://127.0.0.1:1/0"
    )


def test_an_unreachable_redis_is_503(redis_url: str) -> None:
    app = create_app({"TESTING": True, "REDIS_URL": "redis://127.0.0.1:1/0"})
    started = time.monotonic()
    response = app.test_client().post("/api/tasks", json={"task": "consume", "args": [1]})
    assert response.status_code == 503
    assert time.monotonic() - started < 2.0
    assert app.test_client().get(f"/api/tasks/{uuid.uuid4()}").status_code == 503


def test_recent_tasks_are_listed_newest_first_and_filter_by_state_and_task(
    client: FlaskClient,
) -> None:
    ids = [submit(client, {"task": "consume", "args": [n]}).get_json()["id"] for n in range(3)]
    for task_id in ids:
        wait_for_state(client, task_id, "SUCCESS")
    listed = client.get("/api/tasks?task=consume&state=SUCCESS&limit=50").get_json()["tasks"]
    positions = [next(i for i, doc in enumerate(listed) if doc["id"] == t) for t in ids]
    assert positions == sorted(positions, reverse=True)
    assert all(doc["task"] == "consume" and doc["state"] == "SUCCESS" for doc in listed)
    assert client.get("/api/tasks?state=LOST").status_code == 400
    assert client.get("/api/tasks?limit=0").status_code == 400


def test_the_registry_lists_each_task_with_its_parameters(client: FlaskClient) -> None:
    tasks = {t["name"]: t for t in client.get("/api/registry").get_json()["tasks"]}
    assert {"consume", "long_task", "flaky"} <= set(tasks)
    steps = next(p for p in tasks["long_task"]["params"] if p["name"] == "steps")
    assert steps == {
        "name": "steps",
        "type": "integer",
        "required": False,
        "default": 10,
        "minimum": 1,
        "maximum": 1000,
    }


def test_failure_is_published_together_with_its_dead_letter_and_final_record(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    # Whoever hears FAILURE (an SSE client, Flower, a poller) must find the dead
    # letter too: the state, the record and the dead letter are one atomic write.
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.psubscribe(keys.CELERY_RESULT_PREFIX + "*")
    try:
        body = {"task": "always_fails", "kwargs": {"message": "atomic"}}
        submitted = submit(client, body).get_json()["id"]

        def failure_heard() -> bool:
            message = pubsub.get_message(timeout=0.5)
            if message is None or message["channel"] != keys.celery_result(submitted):
                return False
            return bool(json.loads(message["data"])["status"] == "FAILURE")

        wait_until(failure_heard, timeout_s=30, what="FAILURE to be published")
        record = redis_client.hgetall(keys.task_record(submitted))
        dead_letter = redis_client.get(keys.dead_letter(submitted))
    finally:
        pubsub.close()
    assert record["dead_letter"] == "1"
    assert record["state"] == "FAILURE"
    assert dead_letter is not None
    assert json.loads(dead_letter)["error"] == {"type": "DeliberateFailure", "message": "atomic"}


def test_a_dead_letter_can_be_replayed_as_a_new_linked_task(client: FlaskClient) -> None:
    task_id = submit(client, {"task": "always_fails"}).get_json()["id"]
    wait_for_state(client, task_id, "FAILURE")
    response = client.post(f"/api/deadletters/{task_id}/replay")
    assert response.status_code == 202
    replay = response.get_json()
    assert replay["id"] != task_id and replay["replay_of"] == task_id
    assert wait_for_state(client, replay["id"], "FAILURE")["dead_letter"] is True
    assert client.delete(f"/api/deadletters/{replay['id']}").status_code == 204
    assert client.delete(f"/api/deadletters/{replay['id']}").status_code == 404


def test_the_article_prodcons_trigger_enqueues_a_number_and_redirects_home(
    client: FlaskClient,
) -> None:
    response = client.get("/prodcons")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    newest = client.get("/api/tasks?limit=1").get_json()["tasks"][0]
    assert newest["task"] == "consume"
    assert wait_for_state(client, newest["id"], "SUCCESS")["result"]["consumed"] in range(9)


def test_the_openapi_document_describes_the_tasks_api(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert {"post", "get"} <= set(doc["paths"]["/api/tasks"])
    assert "consume" in doc["components"]["schemas"]["Submission"]["properties"]["task"]["enum"]


def test_health_and_readiness(client: FlaskClient, relay_worker: object) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.get_json()["checks"]
    assert checks["redis"]["ok"] and checks["queue:tasks"]["ok"] and checks["queue:relay"]["ok"]
    assert checks["redis_memory"]["ok"] and "used_bytes" in checks["redis_memory"]


def _samples(client: FlaskClient) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            label = sample.labels.get("task") or sample.labels.get("queue") or ""
            if sample.labels.get("le") in (None, "+Inf"):
                found[(sample.name, label)] = sample.value
    return found


def test_metrics_count_tasks_per_task_with_runtimes_and_queue_depth(client: FlaskClient) -> None:
    before = _samples(client)
    task_id = submit(client, {"task": "consume", "args": [8]}).get_json()["id"]
    wait_for_state(client, task_id, "SUCCESS")

    def counted() -> dict[tuple[str, str], float] | None:
        after = _samples(client)
        done = after.get(("taskrelay_tasks_succeeded_total", "consume"), 0)
        return (
            after if done > before.get(("taskrelay_tasks_succeeded_total", "consume"), 0) else None
        )

    after = wait_until(counted, timeout_s=10, what="the success to be counted")
    submitted = ("taskrelay_tasks_submitted_total", "consume")
    assert after[submitted] >= before.get(submitted, 0) + 1
    assert after[("taskrelay_task_runtime_seconds_count", "consume")] >= 1
    assert ("taskrelay_queue_depth", "tasks") in after


def test_task_event_streams_take_a_stream_slot_like_channel_streams(redis_url: str) -> None:
    capped = create_app({"TESTING": True, "REDIS_URL": redis_url, "SSE_MAX_STREAMS_PER_CLIENT": 1})
    try:
        client = capped.test_client()
        task_id = client.post("/api/tasks", json={"task": "consume", "args": [1]}).get_json()["id"]
        first = client.get(f"/api/tasks/{task_id}/events", buffered=False)
        second = client.get(f"/api/tasks/{task_id}/events", buffered=False)
        assert first.status_code == 200
        assert second.status_code == 429 and int(second.headers["Retry-After"]) > 0
        first.close()
        third = client.get(f"/api/tasks/{task_id}/events", buffered=False)
        assert third.status_code == 200
        third.close()
    finally:
        capped.extensions["taskrelay"].close()
