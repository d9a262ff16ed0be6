"""Security headers on every response: JSON, errors, event streams, pages and static files.

A response that sets its own Content-Security-Policy (the dashboard's pages) keeps
it; every other response gets one that allows nothing, since JSON, event streams
and error bodies are data that a browser must never run, style or frame.

They are added as the response starts, around Flask's WSGI app, rather than to the
response object in ``after_request``: there each header was checked and copied by
Werkzeug's ``Headers`` twice (once added, once copied for the server), about 5 % of
the instructions of a ``GET /api/tasks/<id>`` and 2 % of a ``POST /api/tasks``
(docs/benchmarks.md). Every answer Flask gives passes through ``start_response``:
error handlers' and a 500's, and an event stream's before its first byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from flask import Flask

# For anything that is not a page: load nothing, and be framed by nobody.
DATA_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"

SECURITY_HEADERS = {
    # A browser must take the Content-Type as given, never guess HTML from data.
    "X-Content-Type-Options": "nosniff",
    # No page here links anywhere that needs to know where the visitor came from.
    "Referrer-Policy": "no-referrer",
    # frame-ancestors says the same to current browsers; this, to older ones.
    "X-Frame-Options": "DENY",
}


# Every header above, with the policy for data, by lower-cased name.
_DEFAULTS = {
    name.lower(): (name, value)
    for name, value in {
        **SECURITY_HEADERS,
        "Content-Security-Policy": DATA_CONTENT_SECURITY_POLICY,
    }.items()
}


class SecureHeaders:
    """WSGI middleware: the defaults a response's headers lack, added as it starts."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start_secure(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers.extend(
                [default for lowered, default in _DEFAULTS.items() if lowered not in present]
            )
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start_secure)


def init_app(app: Flask) -> None:
    # Flask's way to wrap its WSGI app: the app object, its test client and gunicorn
    # all call through app.wsgi_app.
    app.wsgi_app = SecureHeaders(app.wsgi_app)  # type: ignore[method-assign]
