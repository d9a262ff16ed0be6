"""One Redis client per process and URL, made on first use, never at import time."""

from __future__ import annotations

import functools

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

# Fail fast on a Redis that is gone: callers turn the error into 503 or a retry.
SOCKET_CONNECT_TIMEOUT_S = 2
SOCKET_TIMEOUT_S = 10
HEALTH_CHECK_INTERVAL_S = 25


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


def make_client(
    url: str, *, retries: int = WORKER_RETRIES, max_connections: int | None = None
) -> redis.Redis:
    options = {
        "socket_connect_timeout": SOCKET_CONNECT_TIMEOUT_S,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        "retry": Retry(
            ExponentialBackoff(cap=RETRY_BACKOFF_CAP_S, base=RETRY_BACKOFF_BASE_S), retries
        ),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }
    if max_connections is None:
        return redis.Redis.from_url(url, **options)
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=POOL_WAIT_S, **options
    )
    # The client owns its pool: closing the client closes the pool's connections.
    return redis.Redis.from_pool(pool)


@functools.cache
def shared_client(url: str) -> redis.Redis:
    """The process-wide client for a URL; redis-py resets its pool after a fork."""
    return make_client(url)
