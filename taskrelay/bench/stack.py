"""The processes of one benchmark run: its own Redis, then workers and servers.

Everything a run starts is registered here and stopped when the run ends, also
when a step fails or the user presses Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx
import redis

from taskrelay import scheduling, waiting
from taskrelay.bench.errors import BenchError
from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child, stop_together
from taskrelay.waiting import free_port, log_tail

T = TypeVar("T")

PYTHON = sys.executable
READY_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.05
# Children of the benchmark hold no work worth finishing; they get this long.
STOP_TIMEOUT_S = 20.0


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = POLL_INTERVAL_S,
) -> T:
    """Call probe until it returns something truthy; raise BenchError after timeout_s."""
    return waiting.wait_until(
        probe, timeout_s=timeout_s, what=what, interval_s=interval_s, error=BenchError
    )


class Stack:
    """One embedded Redis and the children started against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.redis_server = EmbeddedRedis(port=free_port(), data_dir=root / "redis")
        self.children: list[Child] = []
        self.other_redis: list[EmbeddedRedis] = []

    def __enter__(self) -> Stack:
        self.redis_server.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop_all()
        for server in self.other_redis:
            server.stop()
        self.redis_server.stop()

    @property
    def url(self) -> str:
        return self.redis_server.url

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=30)

    def flush(self) -> None:
        """Start a scenario from an empty Redis, so no leftovers skew it."""
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Every Redis URL a child might read points at this run's Redis."""
        return {
            "REDIS_URL": self.url,
            "CELERY_BROKER_URL": self.url,
            "CELERY_RESULT_BACKEND": self.url,
            "PYTHONUNBUFFERED": "1",
            **(extra or {}),
        }

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, argv, self.logs / f"{name}.log", self.env(env), STOP_TIMEOUT_S)
        return self.start_child(child)

    def start_child(self, child: Child) -> Child:
        """Start a child built elsewhere (as ``taskrelay up`` builds them), under this run.

        Its own environment wins over the run's; it stops within the run's timeout.
        """
        child.env = {**self.env(), **child.env}
        child.stop_timeout_s = STOP_TIMEOUT_S
        self.children.append(child)
        child.start()
        return child

    def start_redis(
        self,
        name: str,
        *,
        durable: bool,
        scheduling_policy: scheduling.Policy = scheduling.NORMAL,
    ) -> EmbeddedRedis:
        """Another Redis server beside the run's own, for a subject that needs one to itself."""
        server = EmbeddedRedis(
            port=free_port(),
            data_dir=self.root / name,
            durable=durable,
            scheduling_policy=scheduling_policy,
        )
        self.other_redis.append(server)
        server.start()
        return server

    def stop_redis(self, server: EmbeddedRedis) -> None:
        server.stop()
        self.other_redis.remove(server)

    def stop(self, *children: Child) -> None:
        stop_together(children)
        for child in children:
            self.children.remove(child)

    def stop_all(self) -> None:
        children, self.children = self.children[::-1], []
        stop_together(children)

    def check_alive(self, child: Child) -> None:
        code = child.exit_code()
        if code is not None:
            raise BenchError(f"{child.name} exited with {code}:\n{log_tail(child.log_path)}")

    def wait_http(self, child: Child, url: str, *, auth: tuple[str, str] | None = None) -> None:
        """Wait until a server child answers url with any status below 500."""

        def answers() -> bool:
            self.check_alive(child)
            try:
                return httpx.get(url, timeout=2, auth=auth).status_code < 500
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout_s=READY_TIMEOUT_S, what=f"{child.name} to answer {url}")


def python_module(module: str, *args: str) -> list[str]:
    return [PYTHON, "-m", module, *args]
