"""Session fixtures: a real redis-server on a free port, real workers, the Flask app."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child
from tests.support import (
    SERVER_ENV,
    decoded_client,
    running_redis,
    server_binary,
    start_web,
    start_worker,
    stop,
)
from webapp import create_app
from webapp.services import services


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("TASKRELAY_TEST_LOG_DIR")
    path = Path(configured) if configured else tmp_path_factory.mktemp("logs")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """The binary every test Redis runs: TASKRELAY_TEST_SERVER, by default "redis"."""
    return server_binary(os.environ.get(SERVER_ENV) or "redis")


@pytest.fixture(scope="session")
def redis_server(
    tmp_path_factory: pytest.TempPathFactory, redis_binary: str
) -> Iterator[EmbeddedRedis]:
    with running_redis(tmp_path_factory.mktemp("redis"), binary=redis_binary) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    with decoded_client(redis_url) as client:
        yield client


@pytest.fixture(scope="session")
def task_worker(redis_url: str, log_dir: Path) -> Iterator[Child]:
    worker = start_worker("tasks", redis_url, log_dir)
    yield worker
    stop(worker)


@pytest.fixture(scope="session")
def relay_worker(redis_url: str, log_dir: Path) -> Iterator[Child]:
    worker = start_worker("relay", redis_url, log_dir, concurrency=1)
    yield worker
    stop(worker)


@pytest.fixture
def app(redis_url: str) -> Iterator[Flask]:
    flask_app = create_app({"TESTING": True, "REDIS_URL": redis_url})
    yield flask_app
    services_of(flask_app).close()


def services_of(flask_app: Flask):  # type: ignore[no-untyped-def]
    with flask_app.app_context():
        return services()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def web(redis_url: str, log_dir: Path) -> Iterator[str]:
    """Base URL of a real gunicorn serving the app."""
    child, base_url = start_web(redis_url, log_dir)
    yield base_url
    stop(child)
