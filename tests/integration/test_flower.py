"""Flower, started as `taskrelay up` starts it, watched through its own HTTP API."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient

from taskrelay import roles
from taskrelay.processes import Child
from tests.support import free_port, log_tail, stop, wait_until

FLOWER_USER = "watcher"


@pytest.fixture(scope="module")
def flower_password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def flower(redis_url: str, log_dir: Path, flower_password: str) -> Iterator[str]:
    """Base URL of a real Flower on a free port, behind basic auth, against the test Redis."""
    port = free_port()
    child = Child(
        f"flower-{port}",
        roles.flower_argv("127.0.0.1", port),
        log_dir / f"flower-{port}.log",
        {
            "REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
            **roles.flower_env(f"{FLOWER_USER}:{flower_password}"),
        },
    )
    child.start()
    base_url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        if child.exit_code() is not None:
            raise AssertionError(f"flower exited:\n{log_tail(child.log_path)}")
        try:
            httpx.get(f"{base_url}/healthcheck", timeout=1)
        except httpx.HTTPError:
            return False
        return True

    wait_until(answering, timeout_s=60, what="flower to answer")
    yield base_url
    stop(child)


@pytest.fixture
def flower_api(flower: str, flower_password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=flower, auth=(FLOWER_USER, flower_password), timeout=10) as api:
        yield api


@pytest.mark.parametrize("path", ["/", "/workers", "/tasks", "/api/workers", "/api/tasks"])
def test_flower_refuses_every_page_and_api_call_without_credentials(flower: str, path: str) -> None:
    response = httpx.get(flower + path, timeout=10)
    assert response.status_code == 401


def test_flower_refuses_a_wrong_password(flower: str) -> None:
    response = httpx.get(f"{flower}/api/workers", auth=(FLOWER_USER, "wrong"), timeout=10)
    assert response.status_code == 401


def test_flower_lists_our_task_worker_and_relay_worker(
    flower_api: httpx.Client, task_worker: Child, relay_worker: Child
) -> None:
    def listed() -> dict[str, Any] | None:
        response = flower_api.get("/api/workers", params={"refresh": "1"})
        assert response.status_code == 200
        workers: dict[str, Any] = response.json()
        names = set(workers)
        return workers if {task_worker.name, relay_worker.name} <= names else None

    workers = wait_until(listed, timeout_s=60, what="flower to list our workers")
    assert _queue_names(workers[task_worker.name]) == {"tasks"}
    assert _queue_names(workers[relay_worker.name]) == {"relay"}


def _queue_names(worker: dict[str, Any]) -> set[str]:
    return {queue["name"] for queue in worker.get("active_queues") or []}


def test_a_task_submitted_over_our_api_appears_in_flower_with_its_final_state(
    flower_api: httpx.Client, client: FlaskClient, task_worker: Child
) -> None:
    # Workers send task events only once Flower has turned them on (it asks every
    # 5 s), so a task that ran before that is not Flower's to know: submit until one
    # runs with events on.
    def seen_finished() -> dict[str, Any] | None:
        response = client.post("/api/tasks", json={"task": "consume", "args": [41]})
        assert response.status_code == 202
        task_id = response.get_json()["id"]
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            tasks = flower_api.get("/api/tasks", params={"limit": "200"}).json()
            found: dict[str, Any] | None = tasks.get(task_id)
            if found is not None and found.get("state") == "SUCCESS":
                return found
            time.sleep(0.2)
        return None

    task = wait_until(seen_finished, timeout_s=90, what="flower to show a task succeeded")
    assert task["name"].endswith("consume")
    assert task["worker"] == task_worker.name
