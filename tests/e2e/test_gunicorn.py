"""The web served by real gunicorn, started as `taskrelay up` starts it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import pytest

from taskrelay import sse_client
from webapp import gunicorn_conf

pytestmark = pytest.mark.usefixtures("task_worker")


def test_a_task_submitted_over_http_is_followed_to_success_over_sse(web: str) -> None:
    response = httpx.post(
        f"{web}/api/tasks",
        json={"task": "long_task", "kwargs": {"steps": 3, "delay_s": 0.2}},
        timeout=10,
    )
    assert response.status_code == 202
    task_id = response.json()["id"]
    assert response.headers["Location"] == f"/api/tasks/{task_id}"
    states = []
    with httpx.stream(
        "GET", f"{web}/api/tasks/{task_id}/events", timeout=httpx.Timeout(10, read=60)
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for event in sse_client.parse(stream.iter_lines()):
            states.append(json.loads(event.data)["state"])
    assert states[-1] == "SUCCESS"
    assert "PROGRESS" in states


def test_the_command_line_submits_and_waits_with_a_progress_bar(web: str) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskrelay.cli",
            "submit",
            "long_task",
            "3",
            "0.1",
            "--wait",
            "--url",
            web,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    task_id, outcome = completed.stdout.strip().splitlines()
    result = json.loads(outcome)
    assert result["id"] == task_id
    assert result["state"] == "SUCCESS"
    assert result["result"] == {"steps": 3}
    assert "PROGRESS" in completed.stderr  # the progress display, in its non-terminal form


def test_the_command_line_reports_a_validation_error_clearly(web: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "taskrelay.cli", "submit", "long_task", "many", "--url", web],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "'steps' must be an integer" in completed.stderr


def test_a_chunked_body_over_the_limit_is_413(web: str) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"task": "consume", "args": ["'
        for _ in range(2048):
            yield b"x" * 1024
        yield b'"]}'

    response = httpx.post(
        f"{web}/api/tasks",
        content=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_keep_alive_connection_left_idle_is_closed_by_the_web(web: str) -> None:
    # One request, then silence: the connection must not hold a slot for ever.
    url = httpx.URL(web)
    with socket.create_connection((url.host, url.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: taskrelay\r\n\r\n")
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200 ")
        sock.settimeout(gunicorn_conf.keepalive + 5)
        started = time.monotonic()
        rest = sock.recv(4096)
        while rest:
            rest = sock.recv(4096)
        closed_after_s = time.monotonic() - started
    assert closed_after_s < gunicorn_conf.keepalive + 3
