"""Many idle Server-Sent Events streams do not starve the API."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from taskrelay.embedded_redis import EmbeddedRedis
from tests.faults.conftest import WorkerFactory
from tests.support import start_web, stop, wait_until

pytestmark = pytest.mark.slow

IDLE_STREAMS = 1000


def open_stream(port: int, channel: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    request = (
        f"GET /api/channels/{channel}/events HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


def test_a_thousand_idle_streams_leave_the_api_answering(
    fault_redis: EmbeddedRedis, fault_worker: WorkerFactory, log_dir: Path
) -> None:
    fault_worker(concurrency=1)
    # As many clients would open them: one address may hold every stream here
    # (tests/faults/test_sse_bounds.py holds one client to its share).
    web, base_url = start_web(
        fault_redis.url, log_dir, env={"TASKRELAY_SSE_MAX_STREAMS_PER_CLIENT": str(IDLE_STREAMS)}
    )
    port = int(base_url.rsplit(":", 1)[1])
    streams: list[socket.socket] = []
    try:
        streams = [open_stream(port, f"idle.{n % 10}") for n in range(IDLE_STREAMS)]
        for sock in streams:
            assert sock.recv(12) == b"HTTP/1.1 200", "a stream was refused"
        with httpx.Client(base_url=base_url, timeout=10) as client:
            assert client.get("/api/registry").status_code == 200
            accepted = client.post("/api/tasks", json={"task": "consume", "args": [1000]})
            assert accepted.status_code == 202
            task_url = accepted.headers["Location"]
            done = wait_until(
                lambda: (doc := client.get(task_url).json())["state"] == "SUCCESS" and doc,
                timeout_s=60,
                what="a task to succeed beside the idle streams",
            )
            assert done["result"] == {"consumed": 1000}
    finally:
        for sock in streams:
            sock.close()
        stop(web)
