"""Answering with a page: the strict CSP, no caching, and text that always encodes.

Pages show stored values (task arguments, results, errors), so one of them
must never stop a page from rendering: a lone UTF-16 surrogate, which UTF-8
cannot encode, is written as its escape (``\\ud800``) instead.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

# The page loads its script and styles from this server only and talks to no other
# origin; nothing inline may run, so an injected string can never become code.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def printable(text: str) -> str:
    """`text` with every lone surrogate written as its escape, so it encodes as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def page(html: str, status: int = 200) -> Response:
    response = Response(printable(html), status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # Pages show live data, and a signed-in page must not outlive signing out.
    response.headers["Cache-Control"] = "no-store"
    return response
