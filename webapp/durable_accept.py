"""Durable accept: a 202 only once Redis's WAIT confirms that replicas hold the write.

With TASKRELAY_SUBMIT_REPLICAS=N (N > 0) accepting a task, a workflow or a channel
message ends with ``WAIT N timeout`` on the connection that ran its MULTI/EXEC: WAIT
counts the replicas that acknowledged everything that connection wrote, and only
that connection's writes, so it must be the very one. Fewer than N in time is a 503
that names what was written: the record and the message stay on the primary
(docs/decisions.md), and a retry with the same Idempotency-Key answers the same task.
With N = 0 nothing here runs: no connection is held and no command is added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from redis.client import Pipeline
from redis.connection import ConnectionPool

from tasks.connections import UNREACHABLE, WEB_SOCKET_TIMEOUT_S
from webapp.errors import ServiceUnavailable
from webapp.services import services_of

EXTENSION_KEY = "taskrelay.durable_accept"
# What a 503 of an accepting endpoint means, for the OpenAPI document.
ACCEPT_503_REASON = (
    "broker unreachable, nothing enqueued; or, with TASKRELAY_SUBMIT_REPLICAS, "
    "`not_replicated`: written on the primary but not confirmed by replicas in time "
    "(it may still run; retry after Retry-After, with the same Idempotency-Key where "
    "the endpoint takes one)"
)


# Takes the pipeline of a MULTI/EXEC before it runs, so that WAIT can follow on its connection.
Holder = Callable[[Pipeline], None]


class NotReplicated(ServiceUnavailable):
    code = "not_replicated"


class DurableAcceptUnsupported(ValueError):
    """TASKRELAY_SUBMIT_REPLICAS set where the write cannot be awaited on one connection."""


@dataclass(frozen=True)
class ReplicaWait:
    """How many replicas must hold an accepted write, and how long to wait for them."""

    replicas: int
    timeout_ms: int

    @property
    def read_timeout_s(self) -> float:
        # WAIT answers after timeout_ms at the latest; the socket's own bound comes on top.
        return self.timeout_ms / 1000 + WEB_SOCKET_TIMEOUT_S


def from_config(config: Any, *, submit_atomically: bool) -> ReplicaWait | None:
    """The app's replica wait, or None when SUBMIT_REPLICAS is 0; refuses bad settings."""
    replicas = _whole_number(config, "SUBMIT_REPLICAS")
    timeout_ms = _whole_number(config, "SUBMIT_REPLICAS_TIMEOUT_MS")
    if replicas == 0:
        return None
    if timeout_ms == 0:
        # WAIT with 0 blocks for ever: a request must end.
        raise DurableAcceptUnsupported(
            "TASKRELAY_SUBMIT_REPLICAS_TIMEOUT_MS must be at least 1 when "
            "TASKRELAY_SUBMIT_REPLICAS is set"
        )
    if not submit_atomically:
        raise DurableAcceptUnsupported(
            "TASKRELAY_SUBMIT_REPLICAS needs taskrelay's Redis transport on the Redis (and "
            "database) of REDIS_URL, where a task's record and message commit in one "
            "MULTI/EXEC that WAIT can follow; unset CELERY_BROKER_URL or set it to REDIS_URL"
        )
    return ReplicaWait(replicas=replicas, timeout_ms=timeout_ms)


def _whole_number(config: Any, name: str) -> int:
    value = config[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DurableAcceptUnsupported(
            f"TASKRELAY_{name} must be a whole number, 0 or more; got {value!r}"
        )
    return value


def init_app(app: Flask) -> ReplicaWait | None:
    clients = services_of(app)
    try:
        found = from_config(app.config, submit_atomically=clients.submit_atomically)
    except DurableAcceptUnsupported:
        # A refused start closes what it opened.
        clients.close()
        raise
    app.extensions[EXTENSION_KEY] = found
    return found


def current() -> ReplicaWait | None:
    """The replica wait of the app handling the current request."""
    found: ReplicaWait | None = current_app.extensions.get(EXTENSION_KEY)
    return found


class _LendOne:
    """Stands in for a pipeline's pool: lends it one connection and keeps it on release.

    redis-py's pipeline takes a connection from ``connection_pool`` to run MULTI/EXEC
    and gives it back right after; given back, another request could take it before
    WAIT runs. Kept here, WAIT follows on it, and then it goes back to the real pool.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.connection = pool.get_connection()
        self.lent = False

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self.lent = True
        return self.connection

    def release(self, connection: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


class Hold:
    """What a caller hands the pipeline of its MULTI/EXEC to, before it runs."""

    def __init__(self) -> None:
        self.lender: _LendOne | None = None

    def __call__(self, pipe: Pipeline) -> None:
        if self.lender is not None:
            raise RuntimeError("one accept holds one MULTI/EXEC's connection")
        self.lender = _LendOne(pipe.connection_pool)
        pipe.connection_pool = self.lender  # type: ignore[assignment]


def _no_hold(pipe: Pipeline) -> None:
    return None


@contextmanager
def replicated(
    wait: ReplicaWait | None, *, what: str, advice: str, retry_after_s: int
) -> Iterator[Holder]:
    """Yields ``hold(pipe)`` for the block's MULTI/EXEC; after the block, WAIT on its connection.

    A block that raises is passed through with no WAIT: its caller handles that failure.
    The 503 names the write (``what``, such as "task <id>") and what to do (``advice``).
    """
    if wait is None:
        yield _no_hold
        return
    hold = Hold()
    try:
        yield hold
        if hold.lender is None or not hold.lender.lent:
            # redis-py ran the transaction on a connection of its own choosing: WAIT
            # anywhere else would count nothing of this write.
            raise RuntimeError("the accept's MULTI/EXEC did not run on the held connection")
        acknowledged = _wait(hold.lender.connection, wait)
    finally:
        if hold.lender is not None:
            hold.lender.pool.release(hold.lender.connection)
    if acknowledged < wait.replicas:
        raise NotReplicated(
            f"{what} is written on the primary Redis, but only {acknowledged} of "
            f"{wait.replicas} replicas confirmed it within {wait.timeout_ms} ms "
            f"(TASKRELAY_SUBMIT_REPLICAS). {advice}",
            retry_after_s=retry_after_s,
        )


def _wait(connection: Any, wait: ReplicaWait) -> int:
    """Replicas that acknowledged every write of this connection; 0 if Redis is unreachable."""
    try:
        connection.send_command("WAIT", wait.replicas, wait.timeout_ms)
        return int(connection.read_response(timeout=wait.read_timeout_s))
    except UNREACHABLE:
        # redis-py has dropped the connection; the write's fate is the primary's.
        return 0
