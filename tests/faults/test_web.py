"""The web holds no state of its own: restarting it loses nothing it accepted."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from taskrelay.embedded_redis import EmbeddedRedis
from tests.faults.conftest import WorkerFactory
from tests.support import start_web, stop, wait_until

pytestmark = pytest.mark.slow


def test_tasks_accepted_before_a_web_restart_all_complete_and_stay_visible(
    fault_redis: EmbeddedRedis, fault_worker: WorkerFactory, log_dir: Path
) -> None:
    web, base_url = start_web(fault_redis.url, log_dir)
    accepted = [
        httpx.post(f"{base_url}/api/tasks", json={"task": "consume", "args": [n]}, timeout=10)
        for n in range(20)
    ]
    assert {a.status_code for a in accepted} == {202}
    stop(web)  # SIGTERM: gunicorn's graceful stop
    web, base_url = start_web(fault_redis.url, log_dir)
    try:
        fault_worker(concurrency=2)

        def all_done() -> bool:
            states = [
                httpx.get(f"{base_url}{a.headers['Location']}", timeout=10).json()["state"]
                for a in accepted
            ]
            return all(state == "SUCCESS" for state in states)

        wait_until(all_done, timeout_s=60, interval_s=0.5, what="every accepted task to succeed")
    finally:
        stop(web)
