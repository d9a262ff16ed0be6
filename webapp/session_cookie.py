"""The dashboard's sign-in cookie: proof of a token that a browser's EventSource can carry.

EventSource cannot send an ``Authorization`` header, and a token in a URL ends up
in logs and history. So, when reads need a token, the sign-in form trades a token
for this cookie. It holds no token and no server-side state: an expiry and an
HMAC of it keyed by the token, so every web process checks it alone, removing the
token from the settings ends every session made with it, and a leaked cookie
gives away no token.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

COOKIE_NAME = "taskrelay_session"
# How long a sign-in lasts, in seconds; the browser forgets the cookie then too.
SESSION_TTL_S = 12 * 3600
# Binds the MAC to this use, so it can never be mistaken for another MAC of a token.
_PURPOSE = b"taskrelay dashboard read session v1"
# Unix seconds have 10 digits until the year 2286; more is not a cookie we issued.
_EXPIRY_MAX_DIGITS = 12


def _mac(token: str, expires_at: int) -> str:
    message = _PURPOSE + b":" + str(expires_at).encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def issue(token: str, now: float | None = None) -> str:
    """A cookie value for `token`, valid for SESSION_TTL_S from `now`."""
    expires_at = int(now if now is not None else time.time()) + SESSION_TTL_S
    return f"{expires_at}.{_mac(token, expires_at)}"


def is_valid(value: str | None, tokens: Iterable[str], now: float | None = None) -> bool:
    """Whether `value` was issued for one of `tokens` and has not expired."""
    if not value:
        return False
    expires, _, given = value.partition(".")
    well_formed = len(expires) <= _EXPIRY_MAX_DIGITS and expires.isascii() and expires.isdigit()
    if not well_formed or not given.isascii():
        return False
    expires_at = int(expires)
    if expires_at <= (now if now is not None else time.time()):
        return False
    # Constant time against every token, as the bearer check does.
    return any(hmac.compare_digest(given, _mac(token, expires_at)) for token in tokens)
