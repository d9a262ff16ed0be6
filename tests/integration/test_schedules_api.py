"""The schedules API through Flask's client, against a real Redis (and a real worker for runs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from tasks import keys
from tests.support import wait_until
from webapp import create_app

TOKEN = "schedules-test-token"


@pytest.fixture
def schedules(client: FlaskClient) -> Iterator[list[str]]:
    """Names of schedules a test made; each is deleted afterwards (the Redis is shared)."""
    made: list[str] = []
    yield made
    for name in made:
        client.delete(f"/api/schedules/{name}")


def create(client: FlaskClient, made: list[str], **body: Any) -> Any:
    name = body.setdefault("name", f"s-{uuid.uuid4().hex[:12]}")
    response = client.post("/api/schedules", json=body)
    if response.status_code == 201:
        made.append(name)
    return response


def stored_schedules(client: redis.Redis) -> tuple[int, int, int]:
    return (
        client.zcard(keys.SCHEDULE_INDEX),
        client.hlen(keys.SCHEDULE_NAMES),
        len(list(client.scan_iter(match=keys.schedule("*"), count=1000))),
    )


def test_a_schedule_is_created_read_by_id_or_name_listed_and_deleted(
    client: FlaskClient, redis_client: redis.Redis, schedules: list[str]
) -> None:
    response = create(
        client, schedules, task="consume", args=[4], cron="30 2 * * *", timezone="Europe/Berlin"
    )
    assert response.status_code == 201, response.get_json()
    doc = response.get_json()
    assert response.headers["Location"] == f"/api/schedules/{doc['id']}"
    assert doc["enabled"] is True and doc["misfire"] == "run_once" and doc["last_run"] is None
    # Five fire times, at 02:30 Berlin time (or 03:00 on the night the clocks skip 02:30).
    assert len(doc["next_fire_times"]) == 5
    for fire_time in doc["next_fire_times"]:
        local = datetime.fromisoformat(fire_time)
        assert local.utcoffset() in (timedelta(hours=1), timedelta(hours=2))  # CET, CEST
        assert (local.hour, local.minute) in ((2, 30), (3, 0))
        assert local > datetime.now(UTC)
    assert client.get(f"/api/schedules/{doc['id']}").get_json() == doc
    assert client.get(f"/api/schedules/{doc['name']}").get_json() == doc
    listed = client.get("/api/schedules").get_json()["schedules"]
    assert doc["id"] in [s["id"] for s in listed]

    assert client.delete(f"/api/schedules/{doc['name']}").status_code == 204
    assert client.get(f"/api/schedules/{doc['id']}").status_code == 404
    assert not redis_client.exists(keys.schedule(doc["id"]), keys.schedule_claim(doc["id"]))
    assert redis_client.zscore(keys.SCHEDULES_DUE, doc["id"]) is None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"task": "no_such_task", "every_s": 5}, 404, "task"),
        ({"task": "consume", "args": [1], "cron": "61 * * * *"}, 400, "cron"),
        ({"task": "consume", "args": [1], "cron": "* * * *"}, 400, "cron"),
        (
            {"task": "consume", "args": [1], "cron": "0 * * * *", "timezone": "Mars/Base"},
            400,
            "timezone",
        ),
        ({"task": "consume", "args": ["seven"], "every_s": 5}, 400, "number"),
        ({"task": "consume", "kwargs": {"numbr": 1}, "every_s": 5}, 400, "numbr"),
        ({"task": "consume", "args": [1], "every_s": 0}, 400, "every_s"),
        ({"task": "consume", "args": [1], "every_s": 5, "cron": "* * * * *"}, 400, "every_s"),
    ],
)
def test_bad_input_is_refused_with_the_field_named_and_nothing_stored(
    client: FlaskClient,
    redis_client: redis.Redis,
    schedules: list[str],
    body: dict[str, Any],
    status: int,
    field: str,
) -> None:
    before = stored_schedules(redis_client)
    response = create(client, schedules, **body)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert stored_schedules(redis_client) == before


def test_an_unknown_task_lists_the_known_ones_like_post_api_tasks(
    client: FlaskClient, schedules: list[str]
) -> None:
    scheduled = create(client, schedules, task="nope", every_s=5).get_json()["error"]
    submitted = client.post("/api/tasks", json={"task": "nope"}).get_json()["error"]
    assert scheduled == submitted


def test_a_second_schedule_with_a_taken_name_is_409_and_changes_nothing(
    client: FlaskClient, schedules: list[str]
) -> None:
    first = create(client, schedules, task="noop", every_s=60).get_json()
    again = client.post(
        "/api/schedules", json={"name": first["name"], "task": "noop", "every_s": 5}
    )
    assert again.status_code == 409
    assert again.get_json()["error"]["field"] == "name"
    assert client.get(f"/api/schedules/{first['name']}").get_json()["every_s"] == 60


def test_pausing_clears_the_fire_times_and_resuming_counts_from_now(
    client: FlaskClient, redis_client: redis.Redis, schedules: list[str]
) -> None:
    doc = create(client, schedules, task="noop", every_s=3600).get_json()
    paused = client.patch(f"/api/schedules/{doc['id']}", json={"enabled": False})
    assert paused.status_code == 200
    assert paused.get_json()["enabled"] is False
    assert paused.get_json()["next_fire_times"] == []
    assert redis_client.zscore(keys.SCHEDULES_DUE, doc["id"]) is None
    resumed = client.patch(f"/api/schedules/{doc['id']}", json={"enabled": True}).get_json()
    assert resumed["next_fire_times"][0] > datetime.now(UTC).isoformat()
    claim = float(redis_client.get(keys.schedule_claim(doc["id"])))
    assert claim >= datetime.fromisoformat(resumed["updated_at"]).timestamp()


def test_a_patch_retimes_renames_and_is_checked_like_a_new_schedule(
    client: FlaskClient, redis_client: redis.Redis, schedules: list[str]
) -> None:
    doc = create(client, schedules, task="consume", args=[1], every_s=60).get_json()
    new_name = f"renamed-{uuid.uuid4().hex[:8]}"
    changed = client.patch(
        f"/api/schedules/{doc['id']}", json={"name": new_name, "cron": "0 12 * * MON"}
    )
    assert changed.status_code == 200, changed.get_json()
    schedules.append(new_name)
    assert changed.get_json()["every_s"] is None
    assert all(
        datetime.fromisoformat(t).weekday() == 0 for t in changed.get_json()["next_fire_times"]
    )
    assert client.get(f"/api/schedules/{doc['name']}").status_code == 404
    refused = client.patch(f"/api/schedules/{new_name}", json={"args": ["one"]})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["field"] == "number"
    assert client.get(f"/api/schedules/{new_name}").get_json()["args"] == [1]
    assert redis_client.hget(keys.SCHEDULE_NAMES, new_name) is not None


@pytest.mark.usefixtures("task_worker")
def test_run_now_sends_the_task_and_its_run_shows_the_task_s_state(
    client: FlaskClient, schedules: list[str]
) -> None:
    doc = create(client, schedules, task="consume", args=[21], every_s=3600, enabled=False)
    schedule = doc.get_json()
    response = client.post(f"/api/schedules/{schedule['id']}/run")
    assert response.status_code == 202
    run = response.get_json()
    assert run["trigger"] == "manual" and run["slot"] is None
    assert response.headers["Location"] == f"/api/tasks/{run['task_id']}"

    def succeeded() -> dict[str, Any] | None:
        runs = client.get(f"/api/schedules/{schedule['id']}/runs").get_json()["runs"]
        return runs[0] if runs and runs[0]["state"] == "SUCCESS" else None

    shown = wait_until(succeeded, what="the run's task to succeed")
    assert shown["task_id"] == run["task_id"]
    assert client.get(f"/api/tasks/{run['task_id']}").get_json()["result"] == {"consumed": 21}
    last = client.get(f"/api/schedules/{schedule['id']}").get_json()["last_run"]
    assert last["task_id"] == run["task_id"] and last["state"] == "SUCCESS"


@pytest.fixture
def guarded_app(redis_url: str) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "API_TOKENS": TOKEN})
    yield app
    app.extensions["taskrelay"].close()


def test_every_mutating_schedule_endpoint_needs_a_token_and_reads_do_not(
    guarded_app: Flask,
) -> None:
    client = guarded_app.test_client()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    body = {"name": f"guarded-{uuid.uuid4().hex[:8]}", "task": "noop", "every_s": 60}
    assert client.post("/api/schedules", json=body).status_code == 401
    created = client.post("/api/schedules", json=body, headers=bearer)
    assert created.status_code == 201
    ref = created.get_json()["id"]
    try:
        assert client.patch(f"/api/schedules/{ref}", json={"enabled": False}).status_code == 401
        assert client.post(f"/api/schedules/{ref}/run").status_code == 401
        assert client.delete(f"/api/schedules/{ref}").status_code == 401
        wrong = {"Authorization": "Bearer wrong"}
        assert client.delete(f"/api/schedules/{ref}", headers=wrong).status_code == 403
        assert client.get(f"/api/schedules/{ref}").status_code == 200
        assert client.get(f"/api/schedules/{ref}/runs").status_code == 200
        assert client.get("/api/schedules").status_code == 200
    finally:
        assert client.delete(f"/api/schedules/{ref}", headers=bearer).status_code == 204


def test_the_openapi_document_describes_every_schedule_operation(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    paths = doc["paths"]
    assert set(paths["/api/schedules"]) == {"post", "get"}
    assert set(paths["/api/schedules/{ref}"]) == {"get", "patch", "delete"}
    assert "post" in paths["/api/schedules/{ref}/run"]
    assert "get" in paths["/api/schedules/{ref}/runs"]
    for method in ("patch", "delete"):
        assert "401" in paths["/api/schedules/{ref}"][method]["responses"]
    body = doc["components"]["schemas"]["ScheduleBody"]
    assert "consume" in body["properties"]["task"]["enum"]
    assert body["properties"]["misfire"]["enum"] == ["run_once", "skip"]
