"""Bearer tokens for mutating endpoints, when tokens are configured."""

from __future__ import annotations

import hmac

from flask import Flask, request

from webapp.errors import Forbidden, Unauthorized

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def configured_tokens(app: Flask) -> list[str]:
    raw = app.config.get("API_TOKENS") or ""
    return [token.strip() for token in raw.split(",") if token.strip()]


def install(app: Flask) -> None:
    tokens = configured_tokens(app)
    if not tokens:
        return

    @app.before_request
    def require_token() -> None:
        if request.method not in MUTATING_METHODS or not request.path.startswith("/api/"):
            return
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Unauthorized("this endpoint needs the header Authorization: Bearer <token>")
        # Compare against every token in constant time, so timing reveals nothing.
        if not any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens):
            raise Forbidden("the bearer token is not one of the configured API tokens")
