"""Query parameters that several endpoints read, parsed one way with one error shape."""

from __future__ import annotations

from flask import request

from webapp.errors import BadRequest

# The smallest page a `limit` may ask for.
LIMIT_MIN = 1


def limit_arg(*, default: int, maximum: int) -> int:
    """The `limit` query parameter: a whole number from LIMIT_MIN to `maximum`."""
    raw = request.args.get("limit")
    if raw is None:
        return min(default, maximum)
    # isdigit alone also takes digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not LIMIT_MIN <= int(raw) <= maximum:
        raise BadRequest(f"'limit' must be an integer from {LIMIT_MIN} to {maximum}", field="limit")
    return int(raw)
