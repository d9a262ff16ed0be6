"""Oversized and repeated requests through real gunicorn, and results that expire."""

from __future__ import annotations

import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from flask.testing import FlaskClient

from tests.faults.conftest import WorkerFactory
from tests.faults.helpers import state_of, submit, wait_for_state

TEN_MB = 10 * 1024 * 1024


def test_a_ten_megabyte_body_is_413_with_a_length(web: str) -> None:
    body = b'{"task": "consume", "args": ["' + b"x" * TEN_MB + b'"]}'
    response = httpx.post(
        f"{web}/api/tasks", content=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_ten_megabyte_chunked_body_is_413(web: str) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"task": "consume", "args": ["'
        for _ in range(TEN_MB // 65536):
            yield b"x" * 65536
        yield b'"]}'

    response = httpx.post(
        f"{web}/api/tasks",
        content=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    # The server is still there for the next caller.
    assert httpx.get(f"{web}/healthz", timeout=10).status_code == 200


CUT_BODY = b'{"task": "consume", "args": [1]}'


@pytest.mark.parametrize(
    ("framing", "head", "reason"),
    [
        (
            "sized",
            f"Content-Length: {len(CUT_BODY) + 50}\r\n\r\n".encode() + CUT_BODY,
            b"the body ended before the 82 bytes of its Content-Length",
        ),
        (
            "chunked",
            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(CUT_BODY) + CUT_BODY,
            b"the body ended before its end",
        ),
    ],
)
def test_a_body_cut_short_is_400_and_enqueues_nothing(
    web: str, framing: str, head: bytes, reason: bytes
) -> None:
    host, port = urlsplit(web).hostname, urlsplit(web).port
    accepted_before = httpx.get(f"{web}/api/tasks/counts", timeout=10).json()["all"]
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(
            b"POST /api/tasks HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n" + head
        )
        conn.shutdown(socket.SHUT_WR)  # the client stops sending: the body ends here
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", (framing, answer)
    assert reason in rest
    # The server is still there for the next caller, and nothing was accepted.
    assert httpx.get(f"{web}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{web}/api/tasks/counts", timeout=10).json()["all"] == accepted_before


def test_concurrent_requests_with_one_idempotency_key_make_one_task(web: str) -> None:
    key = str(uuid.uuid4())

    def post(_: int) -> httpx.Response:
        return httpx.post(
            f"{web}/api/tasks",
            json={"task": "consume", "args": [9]},
            headers={"Idempotency-Key": key},
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(post, range(32)))
    assert sorted({a.status_code for a in answers}) == [200, 202]
    assert [a.status_code for a in answers].count(202) == 1
    assert len({a.json()["id"] for a in answers}) == 1


@pytest.mark.slow
def test_a_result_past_its_expiry_keeps_its_final_state_not_queued(
    fault_client: FlaskClient, fault_worker: WorkerFactory, markers: Path
) -> None:
    fault_worker(concurrency=1, env={"TASKRELAY_RESULT_TTL": "1"})
    task_id = submit(fault_client, "consume", number=3)
    assert wait_for_state(fault_client, task_id, "SUCCESS")["result"] == {"consumed": 3}
    time.sleep(2.5)
    doc = state_of(fault_client, task_id)
    assert doc["state"] == "SUCCESS"
    assert doc["result_expired"] is True
    assert doc["result"] is None
    assert doc["finished_at"]
