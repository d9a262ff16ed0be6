"""Small helpers of the fault suite."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from tests.support import wait_until


def submit(client: FlaskClient, task: str, **kwargs: Any) -> str:
    response = client.post("/api/tasks", json={"task": task, "kwargs": kwargs})
    assert response.status_code == 202, response.get_json()
    task_id: str = response.get_json()["id"]
    return task_id


def state_of(client: FlaskClient, task_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = client.get(f"/api/tasks/{task_id}").get_json()
    return doc


def wait_for_state(
    client: FlaskClient, task_id: str, *states: str, timeout_s: float = 60
) -> dict[str, Any]:
    return wait_until(
        lambda: (doc := state_of(client, task_id))["state"] in states and doc,
        timeout_s=timeout_s,
        interval_s=0.1,
        what=f"task {task_id} to reach {states}",
    )


def runs(markers: Path, name: str) -> int:
    """How many times a record_run task with this name ran to its end."""
    path = markers / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def starts(markers: Path, name: str) -> int:
    path = markers / f"{name}.started"
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_started(markers: Path, name: str, count: int = 1, timeout_s: float = 30) -> None:
    wait_until(lambda: starts(markers, name) >= count, timeout_s=timeout_s, what=f"{name} to start")


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 2)
