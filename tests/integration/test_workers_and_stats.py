"""The workers panel from the liveness beacons, and the per-minute task stats, with
real workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support import start_worker, stop, wait_until

pytestmark = pytest.mark.usefixtures("task_worker")


def worker_named(client: FlaskClient, name: str) -> dict[str, Any] | None:
    workers = client.get("/api/workers").get_json()["workers"]
    return next((w for w in workers if w["name"] == name), None)


def test_a_worker_is_listed_alive_with_its_queues_and_not_alive_once_stopped(
    client: FlaskClient, redis_url: str, log_dir: Path
) -> None:
    worker = start_worker("tasks", redis_url, log_dir, concurrency=1)
    try:
        listed = wait_until(
            lambda: worker_named(client, worker.name), what=f"{worker.name} in /api/workers"
        )
        assert listed["alive"] is True
        assert listed["queues"] == ["tasks"]
        assert isinstance(listed["running"], int) and listed["running"] >= 0
        assert listed["last_beat"]
    finally:
        stop(worker)
    gone = wait_until(
        lambda: (w := worker_named(client, worker.name)) is not None and not w["alive"] and w,
        timeout_s=10,
        what=f"{worker.name} marked not alive",
    )
    assert gone["queues"] == ["tasks"]


def totals(client: FlaskClient, name: str) -> tuple[int, int]:
    figures = client.get("/api/tasks/stats?window=600").get_json()["tasks"].get(name)
    if figures is None:
        return 0, 0
    return (
        sum(b["succeeded"] for b in figures["throughput"]),
        sum(b["failed"] for b in figures["throughput"]),
    )


def test_stats_count_finished_tasks_per_minute_with_wait_and_run_percentiles(
    client: FlaskClient,
) -> None:
    consumed_before, _ = totals(client, "consume")
    _, failed_before = totals(client, "always_fails")
    ids = [
        client.post("/api/tasks", json={"task": "consume", "args": [n]}).get_json()["id"]
        for n in range(5)
    ]
    failing = client.post("/api/tasks", json={"task": "always_fails"}).get_json()["id"]
    for task_id in [*ids, failing]:
        wait_until(
            lambda t=task_id: (
                client.get(f"/api/tasks/{t}").get_json()["state"] in ("SUCCESS", "FAILURE")
            ),
            what=f"task {task_id} to finish",
        )
    body = client.get("/api/tasks/stats?window=600").get_json()
    assert body["window_s"] == 600 and body["bucket_s"] == 60
    consume = body["tasks"]["consume"]
    assert len(consume["throughput"]) == 10
    stamps = [b["at"] for b in consume["throughput"]]
    assert stamps == sorted(stamps)
    assert totals(client, "consume")[0] == consumed_before + 5
    assert totals(client, "always_fails")[1] == failed_before + 1
    for figures in (consume["wait_ms"], consume["run_ms"]):
        assert figures["p50"] is not None
        assert 0 <= figures["p50"] <= figures["p95"] <= figures["p99"]


@pytest.mark.parametrize("window", ["0", "59", "3601", "an hour", "-60"])
def test_a_bad_stats_window_is_400(client: FlaskClient, window: str) -> None:
    response = client.get(f"/api/tasks/stats?window={window}")
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "window"
