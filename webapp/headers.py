"""Security headers on every response: JSON, errors, event streams, pages and static files.

A response that sets its own Content-Security-Policy (the dashboard's pages) keeps
it; every other response gets one that allows nothing, since JSON, event streams
and error bodies are data that a browser must never run, style or frame.
"""

from __future__ import annotations

from flask import Flask, Response

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


def secure(response: Response) -> Response:
    # One pass over the headers a response has, rather than a lookup per default:
    # this runs on every response, the hot POST and GET of the task API among them.
    present = {name.lower() for name, _ in response.headers}
    response.headers.extend(
        [default for lowered, default in _DEFAULTS.items() if lowered not in present]
    )
    return response


def init_app(app: Flask) -> None:
    # after_request also runs for error handlers' answers and for a 500, and before
    # an event stream sends its first byte.
    app.after_request(secure)
