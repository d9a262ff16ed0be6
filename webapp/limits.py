"""Rate limits on writes and sign-ins, counted in Redis so every web process shares them."""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from webapp import auth


def _not_limited() -> bool:
    return not auth.rate_limited(request.method, request.path)


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
        storage_uri=app.config["REDIS_URL"],
        strategy="fixed-window",
        # Retry-After and X-RateLimit-* tell a client when to come back.
        headers_enabled=True,
        # A limiter that cannot reach Redis lets requests through: the submit path
        # then answers 503 by itself, with nothing enqueued.
        swallow_errors=True,
        key_prefix="taskrelay:ratelimit",
    )
