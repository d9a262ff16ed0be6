"""Bearer tokens for mutating endpoints, when tokens are configured."""

from __future__ import annotations

import hmac

from flask import Flask, request

from webapp.errors import API_PATH_PREFIX, Forbidden, Unauthorized

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def guards(method: str, path: str) -> bool:
    """Whether a request needs a token (when tokens are configured) and counts to the rate limit."""
    return method in MUTATING_METHODS and path.startswith(API_PATH_PREFIX)


def configured_tokens(app: Flask) -> list[str]:
    raw = app.config.get("API_TOKENS") or ""
    return [token.strip() for token in raw.split(",") if token.strip()]


def init_app(app: Flask) -> None:
    tokens = configured_tokens(app)
    if not tokens:
        return

    @app.before_request
    def require_token() -> None:
        if not guards(request.method, request.path):
            return
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Unauthorized("this endpoint needs the header Authorization: Bearer <token>")
        # Compare against every token in constant time, so timing reveals nothing.
        if not any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens):
            raise Forbidden("the bearer token is not one of the configured API tokens")
