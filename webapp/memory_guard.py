"""New work is refused while Redis still has room: submits answer 503 before Redis says OOM.

Redis runs with ``maxmemory`` and ``noeviction`` (taskrelay/embedded_redis.py): when
full it refuses every write, including the acknowledgements, result writes and lease
renewals that let work already accepted finish. So the web stops taking new work
(task submits, replays, channel publishes) once ``used_memory`` passes a share of
``maxmemory`` (90 % by default), and the room left is for the work in hand. Deletes
stay open: they are how memory comes back.

Both figures come from ``INFO memory`` of the web's Redis (REDIS_URL), the embedded
one or an external one, read at most once per CHECK_INTERVAL_S per web process; a
Redis without ``maxmemory`` is never refused here. A Redis that cannot be read is
not this guard's to report: the submit path and /readyz's Redis check answer for it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask, current_app, request

from webapp import auth
from webapp.errors import ServiceUnavailable
from webapp.services import services_of

EXTENSION_KEY = "taskrelay.memory_guard"
# Past this share of maxmemory, in percent, new work is refused
# (TASKRELAY_REDIS_MEMORY_GUARD_PERCENT).
DEFAULT_GUARD_PERCENT = 90
# How stale the figures may be, in seconds: one INFO per interval per web process.
CHECK_INTERVAL_S = 1.0
# Writes that free memory, or barely use any, stay open under pressure.
ALWAYS_OPEN_METHODS = frozenset({"DELETE"})


@dataclass
class MemoryGuard:
    """The last reading of Redis's memory, refreshed by whichever request finds it stale."""

    client: redis.Redis
    guard_percent: float
    interval_s: float = CHECK_INTERVAL_S
    _status: dict[str, Any] = field(
        init=False, default_factory=lambda: {"ok": True, "checked": False}
    )
    _read_at: float | None = field(init=False, default=None)
    _reading: threading.Lock = field(init=False, default_factory=threading.Lock)

    def status(self) -> dict[str, Any]:
        """The cached status, re-read from Redis when older than interval_s."""
        now = time.monotonic()
        fresh = self._read_at is not None and now - self._read_at < self.interval_s
        # One request reads at a time; the others keep the last reading rather than
        # queue behind a slow Redis.
        if not fresh and self._reading.acquire(blocking=False):
            try:
                self._status = self._read()
                self._read_at = time.monotonic()
            finally:
                self._reading.release()
        return self._status

    def _read(self) -> dict[str, Any]:
        try:
            memory = self.client.info("memory")
        except redis.RedisError as error:
            return {"ok": True, "checked": False, "error": str(error)}
        used = int(memory["used_memory"])
        maxmemory = int(memory.get("maxmemory", 0))
        status: dict[str, Any] = {
            "ok": True,
            "checked": True,
            "used_bytes": used,
            "maxmemory_bytes": maxmemory,
        }
        if maxmemory > 0:
            limit = int(maxmemory * self.guard_percent / 100)
            status.update(ok=used < limit, limit_bytes=limit, guard_percent=self.guard_percent)
        return status


def memory_status(app: Flask) -> dict[str, Any]:
    """Whether Redis has room for new work, for /readyz: ``ok`` False means submits get 503.

    Also ``used_bytes``, ``maxmemory_bytes`` (0: no bound) and ``limit_bytes``, the
    point past which new work is refused; ``checked`` False with an ``error`` when
    Redis could not be read (then ``ok`` stays True).
    """
    guard: MemoryGuard = app.extensions[EXTENSION_KEY]
    return guard.status()


def _refuses(method: str, path: str) -> bool:
    return auth.guards(method, path) and method not in ALWAYS_OPEN_METHODS


def init_app(app: Flask) -> MemoryGuard:
    """Refuse new work with 503 and Retry-After while Redis is near its maxmemory."""
    percent = float(app.config.get("REDIS_MEMORY_GUARD_PERCENT", DEFAULT_GUARD_PERCENT))
    if not 0 < percent <= 100:
        raise ValueError(f"REDIS_MEMORY_GUARD_PERCENT must be above 0 and at most 100: {percent}")
    guard = MemoryGuard(client=services_of(app).redis, guard_percent=percent)
    app.extensions[EXTENSION_KEY] = guard

    @app.before_request
    def refuse_new_work_near_maxmemory() -> None:
        if not _refuses(request.method, request.path):
            return
        status = guard.status()
        if not status["ok"]:
            raise ServiceUnavailable(
                "Redis is close to its memory limit "
                f"({status['used_bytes']} of {status['maxmemory_bytes']} bytes used); "
                "new work is refused until it drains, try again shortly",
                retry_after_s=current_app.config["RETRY_AFTER_S"],
            )

    return guard
