"""The web holds no state of its own: restarting it loses nothing it accepted."""

from __future__ import annotations

import time
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


def test_a_web_stopped_with_sigterm_ends_its_event_streams_at_once_with_a_retry_hint(
    fault_redis: EmbeddedRedis, log_dir: Path
) -> None:
    # One worker, so both streams are held by the process being stopped.
    web, base_url = start_web(fault_redis.url, log_dir, {"TASKRELAY_WEB_WORKERS": "1"})
    try:
        timeout = httpx.Timeout(5, read=STREAM_END_BOUND_S)
        with (
            httpx.Client(base_url=base_url, timeout=timeout) as client,
            client.stream("GET", "/api/channels/sigterm/events") as channel_stream,
            client.stream("GET", "/api/tasks/events") as task_stream,
        ):
            assert channel_stream.status_code == task_stream.status_code == 200
            web.terminate()
            started = time.monotonic()
            endings = [_rest_of(channel_stream), _rest_of(task_stream)]
            ended_after_s = time.monotonic() - started
        # gunicorn's grace period is 10 s; a stream that waited for it would show here.
        assert ended_after_s < STREAM_END_BOUND_S
        assert all("retry: " in rest for rest in endings)
    finally:
        stop(web)


# Both streams end well inside gunicorn's 10 s grace period.
STREAM_END_BOUND_S = 5.0


def _rest_of(stream: httpx.Response) -> str:
    """What a stream sends until it ends."""
    return "".join(stream.iter_text())
