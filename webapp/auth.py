"""Who may do what: bearer tokens for writes, and for reads too when read tokens are set.

A write (POST, PUT, PATCH or DELETE under /api/, or one of the article's GET
triggers) needs one of API_TOKENS when that is set. With API_TOKENS_READ set,
every other request needs a token as well: a read token or an API token, as
``Authorization: Bearer``, or the dashboard's sign-in cookie
(``webapp/session_cookie.py``), which only ever grants reads. Probes, the static
files and the sign-in form itself stay open. docs/decisions.md says why.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, redirect, request
from werkzeug.wrappers import Response

from webapp import session_cookie
from webapp.errors import API_PATH_PREFIX, Forbidden, Unauthorized

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The article's triggers change state on a plain GET (they are links on the page).
PRODCONS_PATH = "/prodcons"
PUBSUB_PATH = "/pubsub"
ARTICLE_TRIGGERS = frozenset({PRODCONS_PATH, PUBSUB_PATH})
# Orchestrators probe these without credentials.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
SIGN_IN_PATH = "/login"
SIGN_OUT_PATH = "/logout"
# The page's script and styles: the project's own files, no data.
STATIC_PATH_PREFIX = "/static/"


def guards(method: str, path: str) -> bool:
    """Whether a request writes: it needs an API token (when set) and counts to the rate limit."""
    writes_api = method in MUTATING_METHODS and path.startswith(API_PATH_PREFIX)
    return writes_api or path in ARTICLE_TRIGGERS


def rate_limited(method: str, path: str) -> bool:
    """Whether a request counts to the rate limit: writes, and attempts to sign in."""
    return guards(method, path) or (method == "POST" and path == SIGN_IN_PATH)


def always_open(path: str) -> bool:
    """Whether a path is served without a token even when reads need one."""
    return (
        path in PROBE_PATHS
        or path in (SIGN_IN_PATH, SIGN_OUT_PATH)
        or path.startswith(STATIC_PATH_PREFIX)
    )


def _split(raw: str | None) -> tuple[str, ...]:
    return tuple(token.strip() for token in (raw or "").split(",") if token.strip())


@dataclass(frozen=True)
class Tokens:
    """The configured tokens: `write` may do anything, `read_only` may only read."""

    write: tuple[str, ...]
    read_only: tuple[str, ...]

    @property
    def reads_closed(self) -> bool:
        return bool(self.read_only)

    @property
    def readers(self) -> tuple[str, ...]:
        return self.write + self.read_only


def tokens_from(config: Mapping[str, Any]) -> Tokens:
    return Tokens(
        write=_split(config.get("API_TOKENS")), read_only=_split(config.get("API_TOKENS_READ"))
    )


def tokens_of(app: Flask) -> Tokens:
    return tokens_from(app.config)


def matches(given: str, tokens: Iterable[str]) -> bool:
    # Compare against every token in constant time, so timing reveals nothing.
    return any(hmac.compare_digest(given.encode(), token.encode()) for token in tokens)


def _bearer(header: str, needs: str) -> str:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized(f"{needs} needs the header Authorization: Bearer <token>")
    return given


def _check_write(tokens: Tokens) -> None:
    given = _bearer(request.headers.get("Authorization", ""), "this endpoint")
    if not matches(given, tokens.write):
        raise Forbidden("the bearer token is not one of the configured API tokens")


def _wants_page() -> bool:
    """A browser asking for a page, rather than a program asking for data."""
    is_data = request.path.startswith(API_PATH_PREFIX)
    return (
        request.method in ("GET", "HEAD")
        and not is_data
        and "text/html" in request.headers.get("Accept", "")
    )


def _check_read(tokens: Tokens) -> Response | None:
    header = request.headers.get("Authorization")
    if header is not None:
        if not matches(_bearer(header, "reading"), tokens.readers):
            raise Forbidden("the bearer token is not one of the configured read or API tokens")
        return None
    if session_cookie.is_valid(request.cookies.get(session_cookie.COOKIE_NAME), tokens.readers):
        return None
    if _wants_page():
        return redirect(SIGN_IN_PATH, code=303)
    raise Unauthorized(
        "reading needs the header Authorization: Bearer <token> (a read or an API token), "
        f"or signing in at {SIGN_IN_PATH}"
    )


def init_app(app: Flask) -> None:
    tokens = tokens_of(app)
    if tokens.reads_closed and not tokens.write:
        raise ValueError(
            "TASKRELAY_API_TOKENS_READ is set but TASKRELAY_API_TOKENS is not: reads would "
            "need a token while anyone could write; set both"
        )
    if not tokens.write:
        return

    @app.before_request
    def require_token() -> Response | None:
        if guards(request.method, request.path):
            _check_write(tokens)
            return None
        if tokens.reads_closed and not always_open(request.path):
            return _check_read(tokens)
        return None
