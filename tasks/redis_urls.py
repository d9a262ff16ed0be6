"""What a connection URL says about the server behind it, decided in one place.

kombu reaches Redis through several schemes; taskrelay's own clients (records,
guarded results, leases, the stats reader) speak to one server directly and take
the schemes that redis-py's ``from_url`` opens, and taskrelay's Sentinel URL:

    redis-sentinel://[[user]:password@]host:port/master_name[/db][?sentinel=host:port&...]

The address is one sentinel; every other is a ``sentinel`` query parameter, so the
URL stays one that any URL parser reads (kombu and Celery parse broker URLs to log
them, and a comma-separated host list is no URL to them). ``rediss-sentinel://``
speaks TLS to the sentinels and to the primary. The password in the URL is the
primary's; the sentinels' own, if they have one, is the query parameter
``sentinel_password``. Every client built from such a URL asks the sentinels for
the current primary and asks again after a promotion. REDIS_SENTINELS with
REDIS_MASTER_NAME build this URL (``from_environment``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

# Schemes kombu's Redis transport answers to: the queues live in Redis lists.
# (kombu's own "sentinel" scheme, and taskrelay's Sentinel URL.)
SENTINEL_SCHEMES = frozenset({"redis-sentinel", "rediss-sentinel"})
BROKER_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "sentinel"}) | SENTINEL_SCHEMES
# Schemes taskrelay's own clients open (tasks/connections.py).
CLIENT_SCHEMES = frozenset({"redis", "rediss"}) | SENTINEL_SCHEMES

# A sentinel's port when the URL names none.
DEFAULT_SENTINEL_PORT = 26379


def scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def is_redis_broker(url: str) -> bool:
    """Whether kombu stores this broker's queues in Redis (so they can be read there)."""
    return scheme(url) in BROKER_SCHEMES


def is_direct_redis(url: str) -> bool:
    """Whether taskrelay's own redis-py clients can open this URL."""
    return scheme(url) in CLIENT_SCHEMES


def is_sentinel(url: str) -> bool:
    """Whether the URL names a Sentinel group rather than one server."""
    return scheme(url) in SENTINEL_SCHEMES


def or_default(url: str | None, default: str) -> str:
    """An unset or empty URL (docker-compose passes unset variables as "") means the default."""
    return url or default


@dataclass(frozen=True)
class SentinelGroup:
    """A primary found through Sentinel: who to ask, for which name, and how to log in."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False

    def primary_kwargs(self) -> dict[str, Any]:
        """What every connection to the primary is opened with (redis-py's keywords)."""
        found: dict[str, Any] = {"db": self.db}
        if self.username:
            found["username"] = self.username
        if self.password:
            found["password"] = self.password
        if self.tls:
            found["ssl"] = True
        return found

    def sentinel_kwargs(self, **options: Any) -> dict[str, Any]:
        """What every connection to a sentinel is opened with; the primary's password is
        not sent there (a sentinel without a password refuses AUTH)."""
        found: dict[str, Any] = dict(options)
        if self.sentinel_password:
            found["password"] = self.sentinel_password
        if self.tls:
            found["ssl"] = True
        return found


def parse_sentinel(url: str) -> SentinelGroup:
    """The Sentinel group a ``redis-sentinel://`` URL names; ValueError if it names none."""
    kind = scheme(url)
    if kind not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL: {kind}://")
    parts = urlsplit(url)
    params = parse_qs(parts.query)
    first = [_host_port(parts.netloc.rpartition("@")[2])] if parts.hostname else []
    sentinels = (*first, *(_host_port(item) for item in params.get("sentinel", [])))
    if not sentinels:
        raise ValueError("a Sentinel URL names at least one sentinel (host:port)")
    master_name, _, db = parts.path.strip("/").partition("/")
    if not master_name:
        raise ValueError("a Sentinel URL names its primary: redis-sentinel://host:port/name")
    return SentinelGroup(
        sentinels=sentinels,
        master_name=unquote(master_name),
        db=int(db or 0),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sentinel_password=next(iter(params.get("sentinel_password", [])), None),
        tls=kind == "rediss-sentinel",
    )


def _host_port(item: str) -> tuple[str, int]:
    host, colon, port = item.strip().rpartition(":")
    if not colon:
        return item.strip(), DEFAULT_SENTINEL_PORT
    return host.strip("[]"), int(port)


def sentinel_url(
    sentinels: str,
    master_name: str,
    *,
    password: str = "",
    sentinel_password: str = "",
    db: int = 0,
    tls: bool = False,
) -> str:
    """The Sentinel URL for ``sentinels`` ("host:port,host:port") and a primary's name."""
    first, *others = [item.strip() for item in sentinels.split(",") if item.strip()]
    auth = f":{quote(password, safe='')}@" if password else ""
    query = [("sentinel", other) for other in others]
    if sentinel_password:
        query.append(("sentinel_password", sentinel_password))
    kind = "rediss-sentinel" if tls else "redis-sentinel"
    encoded = f"?{urlencode(query, safe=':')}" if query else ""
    return f"{kind}://{auth}{first}/{quote(master_name, safe='')}/{db}{encoded}"


def from_environment(environ: Mapping[str, str], default: str) -> str:
    """taskrelay's Redis as the environment names it.

    REDIS_SENTINELS ("host:port,host:port") with REDIS_MASTER_NAME, and optionally
    REDIS_PASSWORD, REDIS_SENTINEL_PASSWORD and REDIS_TLS=1, name a Sentinel group;
    otherwise REDIS_URL, or the default.
    """
    sentinels = environ.get("REDIS_SENTINELS", "")
    if not sentinels:
        return or_default(environ.get("REDIS_URL"), default)
    master_name = environ.get("REDIS_MASTER_NAME", "")
    if not master_name:
        raise ValueError("REDIS_SENTINELS needs REDIS_MASTER_NAME, the name the sentinels watch")
    return sentinel_url(
        sentinels,
        master_name,
        password=environ.get("REDIS_PASSWORD", ""),
        sentinel_password=environ.get("REDIS_SENTINEL_PASSWORD", ""),
        tls=environ.get("REDIS_TLS", "0") == "1",
    )
