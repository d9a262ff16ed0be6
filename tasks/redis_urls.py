"""What a connection URL says about the server behind it, decided in one place.

kombu reaches Redis through several schemes; taskrelay's own clients (records,
guarded results, leases, the stats reader) speak to one server directly and take
only the schemes that redis-py's ``from_url`` opens.
"""

from __future__ import annotations

# Schemes kombu's Redis transport answers to: the queues live in Redis lists.
BROKER_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "sentinel"})
# Schemes redis-py's from_url opens, for taskrelay's own clients.
CLIENT_SCHEMES = frozenset({"redis", "rediss"})


def scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def is_redis_broker(url: str) -> bool:
    """Whether kombu stores this broker's queues in Redis (so they can be read there)."""
    return scheme(url) in BROKER_SCHEMES


def is_direct_redis(url: str) -> bool:
    """Whether taskrelay's own redis-py clients can open this URL."""
    return scheme(url) in CLIENT_SCHEMES


def or_default(url: str | None, default: str) -> str:
    """An unset or empty URL (docker-compose passes unset variables as "") means the default."""
    return url or default
