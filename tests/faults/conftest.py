"""Fixtures of the fault suite: a Redis and workers per test, so that a test may kill them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

import tests.faults.fault_tasks  # noqa: F401  (registers the fault tasks for HTTP)
from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child
from tests.support import decoded_client, running_redis, start_worker, stop
from webapp import create_app

# Short enough that a dead worker's tasks come back within seconds in tests.
FAULT_VISIBILITY_TIMEOUT_S = 6


@pytest.fixture
def fault_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def fault_client(fault_redis: EmbeddedRedis) -> Iterator[FlaskClient]:
    app: Flask = create_app({"TESTING": True, "REDIS_URL": fault_redis.url})
    yield app.test_client()
    app.extensions["taskrelay"].close()


@pytest.fixture
def fault_redis_client(fault_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    with decoded_client(fault_redis.url) as client:
        yield client


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


WorkerFactory = Callable[..., Child]


@pytest.fixture
def fault_worker(fault_redis: EmbeddedRedis, log_dir: Path) -> Iterator[WorkerFactory]:
    """Start workers that know the fault tasks; every one is stopped at the end."""
    started: list[Child] = []

    def start(queue: str = "tasks", **options: object) -> Child:
        env = {"TASKRELAY_VISIBILITY_TIMEOUT": str(FAULT_VISIBILITY_TIMEOUT_S)}
        env.update(options.pop("env", {}) or {})  # type: ignore[arg-type]
        child = start_worker(
            queue,
            fault_redis.url,
            log_dir,
            env=env,
            extra_args=["--include", "tests.faults.fault_tasks"],
            **options,  # type: ignore[arg-type]
        )
        started.append(child)
        return child

    yield start
    for child in started:
        stop(child)
