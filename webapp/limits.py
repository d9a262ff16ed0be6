"""Rate limits on writes and sign-ins, counted in Redis so every web process shares them."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from tasks import redis_urls
from webapp import auth


def _not_limited() -> bool:
    return not auth.rate_limited(request.method, request.path)


def storage(redis_url: str) -> dict[str, Any]:
    """The limiter's storage arguments for taskrelay's Redis URL.

    The limits library names a Sentinel group ``redis+sentinel://host:port,.../name``
    and takes the rest as options; counts are read from the primary only, as a
    replica may lag behind the window being counted.
    """
    if not redis_urls.is_sentinel(redis_url):
        return {"storage_uri": redis_url}
    group = redis_urls.parse_sentinel(redis_url)
    hosts = ",".join(f"{host}:{port}" for host, port in group.sentinels)
    return {
        "storage_uri": f"redis+sentinel://{hosts}/{group.master_name}",
        "storage_options": {
            "use_replicas": False,
            # Without a password of their own, the sentinels get none (the
            # primary's would be refused there).
            "sentinel_kwargs": group.sentinel_kwargs(password=None),
            **group.primary_kwargs(),
        },
    }


def init_app(app: Flask) -> Limiter | None:
    """Limit each client's writes (auth.rate_limited) when RATE_LIMIT is set, e.g. "100/second"."""
    rate = app.config.get("RATE_LIMIT") or ""
    if not rate:
        return None
    return Limiter(
        get_remote_address,
        app=app,
        default_limits=[rate],
        default_limits_exempt_when=_not_limited,
        **storage(app.config["REDIS_URL"]),
        strategy="fixed-window",
        # Retry-After and X-RateLimit-* tell a client when to come back.
        headers_enabled=True,
        # A limiter that cannot reach Redis lets requests through: the submit path
        # then answers 503 by itself, with nothing enqueued.
        swallow_errors=True,
        key_prefix="taskrelay:ratelimit",
    )
