"""A task's history and the one stream of every task's state changes, through real
workers and a real gunicorn (its feed reader fans out under gevent)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from taskrelay import sse_client
from taskrelay.sse_client import Event
from tests.support import wait_until

pytestmark = pytest.mark.usefixtures("task_worker")

# A stream is read in the test's thread; a silent one fails the read after this.
READ_TIMEOUT_S = 20.0


@pytest.fixture
def http(web: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web, timeout=10) as client:
        yield client


def submit(http: httpx.Client, body: dict[str, Any]) -> str:
    response = http.post("/api/tasks", json=body)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["id"]
    return task_id


def finished(http: httpx.Client, task_id: str, timeout_s: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        doc: dict[str, Any] = http.get(f"/api/tasks/{task_id}").json()
        return doc if doc["state"] in ("SUCCESS", "FAILURE") else None

    return wait_until(probe, timeout_s=timeout_s, what=f"task {task_id} to finish")


@contextmanager
def stream(web: str, path: str, headers: dict[str, str] | None = None) -> Iterator[Iterator[Event]]:
    """The events of one SSE response, read in this thread; closed on leaving."""
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
    with (
        httpx.Client(base_url=web, timeout=timeout) as client,
        client.stream("GET", path, headers=headers or {}) as response,
    ):
        assert response.status_code == 200, response.read()
        yield sse_client.parse(response.iter_lines())


def events_of(
    events: Iterator[Event], task_id: str, until: str, timeout_s: float = 30
) -> list[Any]:
    """(event id, data) of one task's events, until it reaches ``until``."""
    deadline = time.monotonic() + timeout_s
    found: list[Any] = []
    for event in events:
        assert time.monotonic() < deadline, f"{task_id} did not reach {until}: {found}"
        if event.event != "task":
            continue
        data = json.loads(event.data)
        if data["id"] == task_id:
            found.append((event.id, data))
            if data["state"] == until:
                return found
    raise AssertionError(f"the stream ended after {found}")


def test_a_task_that_retried_then_succeeded_has_its_whole_history(http: httpx.Client) -> None:
    task_id = submit(http, {"task": "flaky", "kwargs": {"failures": 2}})
    doc = finished(http, task_id)
    assert doc["state"] == "SUCCESS"
    history = doc["history"]
    assert [entry["state"] for entry in history] == [
        "QUEUED",
        "STARTED",
        "RETRY",
        "STARTED",
        "RETRY",
        "STARTED",
        "SUCCESS",
    ]
    assert [entry["retries"] for entry in history] == [0, 0, 0, 1, 1, 2, 2]
    retried = [entry for entry in history if entry["state"] == "RETRY"]
    assert all(entry["error"]["type"] and entry["error"]["message"] for entry in retried)
    assert all(entry["worker"] for entry in history if entry["state"] == "STARTED")
    stamps = [entry["at"] for entry in history]
    assert stamps == sorted(stamps)
    # The indexes followed it: it is listed under SUCCESS, no longer under RETRY.
    listed = http.get("/api/tasks", params={"task": "flaky", "state": "SUCCESS"}).json()
    assert task_id in [t["id"] for t in listed["tasks"]]
    retrying = http.get("/api/tasks", params={"task": "flaky", "state": "RETRY"}).json()
    assert task_id not in [t["id"] for t in retrying["tasks"]]
    assert all("history" not in t for t in listed["tasks"])


def test_the_event_stream_carries_every_change_to_every_page_and_resumes_after_an_id(
    web: str, http: httpx.Client
) -> None:
    # The response starts once its stream is subscribed: nothing after it is missed.
    with stream(web, "/api/tasks/events") as first, stream(web, "/api/tasks/events") as second:
        task_id = submit(http, {"task": "long_task", "kwargs": {"steps": 2, "delay_s": 0.2}})
        seen = [events_of(events, task_id, "SUCCESS") for events in (first, second)]
    assert seen[0] == seen[1], "two pages saw different streams"
    states = [data["state"] for _, data in seen[0]]
    assert states[0] == "QUEUED" and states[1] == "STARTED" and states[-1] == "SUCCESS"
    assert "PROGRESS" in states
    progress = next(data for _, data in seen[0] if data["state"] == "PROGRESS")
    assert progress["progress"]["total"] == 2 and progress["task"] == "long_task"
    assert progress["worker"]

    # Resuming after the first event replays the rest, in order, from Redis.
    first_id = seen[0][0][0]
    for headers, path in (
        ({"Last-Event-ID": first_id}, "/api/tasks/events"),
        ({}, f"/api/tasks/events?last_event_id={first_id}"),
    ):
        with stream(web, path, headers) as events:
            replayed = events_of(events, task_id, "SUCCESS")
        assert replayed == seen[0][1:]


def test_a_malformed_last_event_id_is_400(http: httpx.Client) -> None:
    response = http.get("/api/tasks/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "last_event_id"


def test_a_revoked_task_moves_to_revoked_in_the_list_and_its_history(http: httpx.Client) -> None:
    task_id = submit(http, {"task": "consume", "args": [1], "countdown": 30})
    assert http.delete(f"/api/tasks/{task_id}").status_code == 202
    revoked = http.get("/api/tasks", params={"task": "consume", "state": "REVOKED"}).json()
    assert task_id in [t["id"] for t in revoked["tasks"]]
    queued = http.get("/api/tasks", params={"task": "consume", "state": "QUEUED"}).json()
    assert task_id not in [t["id"] for t in queued["tasks"]]
    history = http.get(f"/api/tasks/{task_id}").json()["history"]
    assert [entry["state"] for entry in history] == ["QUEUED", "REVOKED"]
