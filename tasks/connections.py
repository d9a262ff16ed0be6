"""One Redis client per process and URL, made on first use, never at import time.

A URL names one server (redis://, rediss://) or a Sentinel group
(redis-sentinel://, tasks/redis_urls.py). A client of a Sentinel group asks the
sentinels for the primary whenever it opens a connection, drops the connections
of a primary that was demoted (its writes fail READONLY, which the client turns
into a connection error), and so follows a promotion with the same retries that
ride out a restart.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Sequence
from typing import Any

import redis
import redis.sentinel
from kombu.exceptions import OperationalError
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from tasks import redis_packing, redis_urls

# What Redis or the broker raise when they cannot be reached or stop answering:
# redis-py's connection errors and timeouts, kombu's once its retries give up, and
# the socket's own.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OperationalError, OSError)

# Fail fast on a Redis that is gone: callers turn the error into 503 or a retry.
SOCKET_CONNECT_TIMEOUT_S = 2
SOCKET_TIMEOUT_S = 10
HEALTH_CHECK_INTERVAL_S = 25

# A web request that needs Redis answers within this bound even when Redis is
# frozen (SIGSTOP, a stuck fork, a paused VM): a frozen Redis still accepts TCP
# connections, so only a read timeout notices it. One command waits at most
# WEB_SOCKET_TIMEOUT_S, is not sent again after a timeout, and its 503 carries
# Retry-After; publishing tries twice (webapp/services.py). docs/reliability.md.
WEB_STALL_BOUND_S = 3.0
WEB_SOCKET_TIMEOUT_S = 1.0
WEB_SOCKET_CONNECT_TIMEOUT_S = 1.0


# Workers ride out a Redis restart (about ten seconds of retries); the web
# answers 503 at once instead, so a caller is never kept waiting.
WORKER_RETRIES = 8
WEB_RETRIES = 1
RETRY_BACKOFF_CAP_S = 2.0
RETRY_BACKOFF_BASE_S = 0.1


# The web holds a connection for every open task event stream; under gevent a
# process serves a thousand of them, so its pool is larger and, when exhausted,
# makes a caller wait this long for a connection instead of failing at once.
WEB_MAX_CONNECTIONS = 2000
POOL_WAIT_S = 5.0
# The web's wait for a free connection, inside WEB_STALL_BOUND_S with one command.
WEB_POOL_WAIT_S = 1.5


def make_client(
    url: str, *, retries: int = WORKER_RETRIES, max_connections: int | None = None
) -> redis.Redis:
    """A worker's client: long timeouts, and retries that ride out a restart or a stall."""
    options = {
        "socket_connect_timeout": SOCKET_CONNECT_TIMEOUT_S,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        "retry": Retry(
            ExponentialBackoff(cap=RETRY_BACKOFF_CAP_S, base=RETRY_BACKOFF_BASE_S), retries
        ),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }
    return _client(url, options, max_connections, POOL_WAIT_S)


def make_web_client(url: str, *, max_connections: int = WEB_MAX_CONNECTIONS) -> redis.Redis:
    """A web process's client: a frozen Redis costs one command WEB_SOCKET_TIMEOUT_S.

    A refused or reset connection is tried once more (a restarted Redis leaves
    stale pooled sockets); a timeout is not, as it would double the wait.
    """
    options = {
        "socket_connect_timeout": WEB_SOCKET_CONNECT_TIMEOUT_S,
        "socket_timeout": WEB_SOCKET_TIMEOUT_S,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        "retry": Retry(
            ExponentialBackoff(cap=RETRY_BACKOFF_CAP_S, base=RETRY_BACKOFF_BASE_S),
            WEB_RETRIES,
            supported_errors=(redis.ConnectionError,),
        ),
        "retry_on_error": [redis.ConnectionError],
    }
    return _client(url, options, max_connections, WEB_POOL_WAIT_S)


def make_blocking_client(
    url: str, *, max_connections: int, pool_wait_s: float, **options: Any
) -> redis.Redis:
    """A client whose pool holds at most ``max_connections`` and makes a caller wait
    up to ``pool_wait_s`` for a free one; ``options`` are redis-py's connection keywords."""
    return _client(url, options, max_connections, pool_wait_s)


# How long a question to one sentinel may take, in seconds: a dead sentinel is
# skipped for the next within this bound, so the others still name the primary.
SENTINEL_SOCKET_TIMEOUT_S = 0.5


# How often a pool asks the sentinels where the primary is when it hands out a
# pooled connection, in seconds. Sentinel promotes a replica without demoting an
# old primary that is still up: it turns it into a replica only when it next looks
# at it, some ten seconds later, and a pooled connection would write to it until
# then (writes that its resynchronization then discards). redis-py asks only when
# it opens a connection.
PRIMARY_RECHECK_S = 1.0


class FollowingSentinelPool(redis.sentinel.SentinelConnectionPool):
    """A Sentinel-managed pool that drops its idle connections to a demoted primary
    within PRIMARY_RECHECK_S of the promotion, instead of at their next error."""

    _checked_at = 0.0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - self._checked_at >= PRIMARY_RECHECK_S:
            self._checked_at = now
            # A changed address closes the idle connections, and connections in use
            # are closed as they come back (SentinelConnectionPool.owns_connection).
            with contextlib.suppress(redis.ConnectionError):
                self.get_master_address()  # type: ignore[no-untyped-call]
        return super().get_connection(*args, **kwargs)


def primary_address(pool: Any) -> tuple[str, int] | None:
    """Where the sentinels name a Sentinel-managed pool's primary now; None for a pool
    that is not Sentinel's, and when no sentinel answers. A changed address closes the
    pool's idle connections to the old primary."""
    if not isinstance(pool, redis.sentinel.SentinelConnectionPool):
        return None
    try:
        host, port = pool.get_master_address()  # type: ignore[no-untyped-call]
    except redis.ConnectionError:
        return None
    return str(host), int(port)


def serves_a_replaced_primary(pool: Any, connection: Any) -> bool:
    """Whether a connection held outside the pool (a subscription, a worker's fetch
    loop) is to a server Sentinel no longer names as the primary. False for a pool
    that is not Sentinel's, and when no sentinel answers."""
    if connection is None or not getattr(connection, "host", None):
        return False
    primary = primary_address(pool)
    return primary is not None and (connection.host, int(connection.port)) != primary


class SentinelBlockingConnectionPool(FollowingSentinelPool, redis.BlockingConnectionPool):
    """A Sentinel-managed pool that, when full, waits for a connection as the
    BlockingConnectionPool does, instead of failing at once."""


def _client(
    url: str, options: dict[str, Any], max_connections: int | None, pool_wait_s: float
) -> redis.Redis:
    options = dict(options)
    redis_packing.add_packer(options)
    if redis_urls.is_sentinel(url):
        return _sentinel_client(url, options, max_connections, pool_wait_s)
    if max_connections is None:
        return redis.Redis.from_url(url, **options)
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_wait_s, **options
    )
    # The client owns its pool: closing the client closes the pool's connections.
    return redis.Redis.from_pool(pool)


def _sentinel_client(
    url: str, options: dict[str, Any], max_connections: int | None, pool_wait_s: float
) -> redis.Redis:
    group = redis_urls.parse_sentinel(url)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
        list(group.sentinels),
        sentinel_kwargs=group.sentinel_kwargs(
            socket_timeout=SENTINEL_SOCKET_TIMEOUT_S,
            socket_connect_timeout=SENTINEL_SOCKET_TIMEOUT_S,
        ),
    )
    pooling: dict[str, Any] = {"connection_pool_class": FollowingSentinelPool}
    if max_connections is not None:
        pooling = {
            "connection_pool_class": SentinelBlockingConnectionPool,
            "max_connections": max_connections,
            "timeout": pool_wait_s,
        }
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
        group.master_name, redis_class=redis.Redis, **group.primary_kwargs(), **options, **pooling
    )
    return client


@functools.cache
def shared_client(url: str) -> redis.Redis:
    """The process-wide client for a URL; redis-py resets its pool after a fork."""
    return make_client(url)


def run_pipelined(client: redis.Redis, commands: Sequence[Sequence[Any]]) -> None:
    """Send Redis commands (each a list of words) in one round trip, without MULTI."""
    if not commands:
        return
    with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        pipe.execute()
