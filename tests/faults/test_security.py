"""Hostile input: pickle, forged messages and results, missing tokens, floods, secured Redis."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import trustme
from flask.testing import FlaskClient

from taskrelay.embedded_redis import find_server_binary, server_arguments
from tasks import keys
from tasks.app_factory import create_celery_app
from tests.faults.conftest import WorkerFactory
from tests.faults.helpers import submit, wait_for_state
from tests.support import free_port, start_worker, stop, wait_until
from webapp import create_app


class TouchOnUnpickle:
    """Unpickling this creates a file: proof that a pickle was decoded."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.sentinel,))


def test_a_pickle_payload_on_the_queue_is_refused_and_the_worker_keeps_working(
    fault_redis: Any,
    fault_client: FlaskClient,
    fault_worker: WorkerFactory,
    tmp_path: Path,
    fault_redis_client: redis.Redis,
) -> None:
    fault_worker(concurrency=1)
    sentinel = tmp_path / "unpickled"
    sender = create_celery_app(fault_redis.url)
    sender.send_task(
        "taskrelay.tasks.consume",
        args=[TouchOnUnpickle(sentinel)],
        serializer="pickle",
        queue="tasks",
    )
    after = submit(fault_client, "consume", number=5)
    assert wait_for_state(fault_client, after, "SUCCESS")["result"] == {"consumed": 5}
    assert not sentinel.exists()
    assert fault_redis_client.llen("tasks") == 0  # refused and dropped, not looping
    sender.close()


def test_a_message_naming_an_unknown_task_is_dropped_and_the_worker_keeps_working(
    fault_redis: Any, fault_client: FlaskClient, fault_worker: WorkerFactory
) -> None:
    fault_worker(concurrency=1)
    sender = create_celery_app(fault_redis.url)
    sender.send_task("os.system", args=["echo owned"], queue="tasks")
    sender.send_task("taskrelay.tasks.no_such_task", queue="tasks")
    after = submit(fault_client, "consume", number=6)
    assert wait_for_state(fault_client, after, "SUCCESS")["result"] == {"consumed": 6}
    sender.close()


def test_a_forged_failure_in_the_result_backend_executes_nothing(
    fault_client: FlaskClient, fault_redis_client: redis.Redis, tmp_path: Path
) -> None:
    sentinel = tmp_path / "forged"
    task_id = str(uuid.uuid4())
    fault_redis_client.hset(
        keys.task_record(task_id),
        mapping={"task": "consume", "submitted_at": "2026-01-01T00:00:00+00:00"},
    )
    fault_redis_client.set(
        keys.celery_result(task_id),
        json.dumps(
            {
                "status": "FAILURE",
                "result": {
                    "exc_type": "system",
                    "exc_module": "os",
                    "exc_message": [f"touch {sentinel}"],
                },
                "traceback": None,
                "task_id": task_id,
            }
        ),
    )
    doc = fault_client.get(f"/api/tasks/{task_id}").get_json()
    assert doc["state"] == "FAILURE"
    assert doc["error"]["type"] == "system"
    assert not sentinel.exists()
    # A meta that is not even JSON is ignored, never decoded another way.
    fault_redis_client.set(keys.celery_result(task_id), b"\x80\x04\x95garbage")
    assert fault_client.get(f"/api/tasks/{task_id}").get_json()["state"] == "QUEUED"


def test_api_tokens_guard_every_mutating_endpoint(fault_redis: Any) -> None:
    app = create_app(
        {"TESTING": True, "REDIS_URL": fault_redis.url, "API_TOKENS": "alpha-token, beta-token"}
    )
    client = app.test_client()
    body = {"task": "consume", "args": [1]}
    missing = client.post("/api/tasks", json=body)
    assert missing.status_code == 401
    assert missing.get_json()["error"]["code"] == "unauthorized"
    wrong = client.post("/api/tasks", json=body, headers={"Authorization": "Bearer gamma"})
    assert wrong.status_code == 403
    right = client.post("/api/tasks", json=body, headers={"Authorization": "Bearer beta-token"})
    assert right.status_code == 202
    assert client.delete(f"/api/tasks/{right.get_json()['id']}").status_code == 401
    assert client.get(f"/api/tasks/{right.get_json()['id']}").status_code == 200  # reads stay open
    app.extensions["taskrelay"].close()


def test_a_flood_from_one_client_is_429_with_retry_after(fault_redis: Any) -> None:
    app = create_app({"TESTING": True, "REDIS_URL": fault_redis.url, "RATE_LIMIT": "3/minute"})
    client = app.test_client()
    answers = [client.post("/api/tasks", json={"task": "consume", "args": [n]}) for n in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    limited = answers[-1]
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert client.get("/api/registry").status_code == 200  # reads are not limited
    app.extensions["taskrelay"].close()


@pytest.fixture
def secured_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Redis that speaks only TLS and wants a password; yields its rediss:// URL."""
    authority = trustme.CA()
    server_cert = authority.issue_cert("127.0.0.1", "localhost")
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    authority.cert_pem.write_to_path(str(ca_path))
    server_cert.cert_chain_pems[0].write_to_path(str(cert_path))
    server_cert.private_key_pem.write_to_path(str(key_path))
    port, password = free_port(), uuid.uuid4().hex
    data_dir = tmp_path / "tls-redis"
    data_dir.mkdir()
    args = server_arguments(0, data_dir, durable=False)
    process = subprocess.Popen(
        [
            find_server_binary(),
            *args,
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(cert_path),
            "--tls-key-file",
            str(key_path),
            "--tls-ca-cert-file",
            str(ca_path),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            password,
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"rediss://:{password}@127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca_path}"

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    try:
        wait_until(answers, timeout_s=20, what="the TLS Redis to answer")
        yield url, ca_path
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_task_runs_through_a_tls_redis_with_a_password(
    secured_redis: tuple[str, Path], log_dir: Path
) -> None:
    url, _ = secured_redis
    worker = start_worker("tasks", url, log_dir, concurrency=1)
    app = create_app({"TESTING": True, "REDIS_URL": url})
    try:
        client = app.test_client()
        task_id = submit(client, "consume", number=11)
        assert wait_for_state(client, task_id, "SUCCESS")["result"] == {"consumed": 11}
        refused = redis.Redis.from_url(url.replace(url.split("@")[0], "rediss://:wrong"))
        with pytest.raises(redis.AuthenticationError):
            refused.ping()
    finally:
        app.extensions["taskrelay"].close()
        stop(worker)
