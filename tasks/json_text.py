"""JSON text written by orjson where it reads back as the standard library's would.

Each accepted task writes JSON five times on its way in (its record's arguments,
its first history entry and stream event, kombu's envelope) and more at each
state. The standard library writes a small document in 2-6 µs here, most of it
Python around its C encoder; orjson, a C library made for this, in well under one.

The two texts differ (orjson writes no spaces and leaves non-ASCII text unescaped),
but read back the same wherever the value holds only JSON's own kinds: strings,
integers, booleans, ``None``, finite floats, lists and string-keyed objects of them.
Elsewhere orjson writes another value or none: a UUID or a date as a plain string,
NaN as ``null`` (the standard library writes ``NaN``), an ``Enum`` by its value, a
tuple as a list. So orjson's text is kept only when it reads back equal to the value
(read and compared in C, about 1 µs for an entry); otherwise the caller's own
encoder writes it, as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def exact(value: Any) -> bytes | None:
    """orjson's text of ``value`` if it reads back equal to ``value``, else None."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return None  # a kind orjson does not write at all: bytes, a 65-bit integer
    return encoded if orjson.loads(encoded) == value else None


def dumps(value: Any, otherwise: Callable[[Any], str] = json.dumps) -> str:
    """``value`` as JSON text: orjson's where exact, ``otherwise``'s (json.dumps) else."""
    encoded = exact(value)
    return otherwise(value) if encoded is None else encoded.decode()
