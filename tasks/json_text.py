"""JSON text written by orjson where it reads back as the standard library's would, and
read by orjson where it reads as the standard library would.

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

Reading, orjson differs from the standard library in one way that returns a value
rather than an error: an integer beyond 64 bits comes back as a float
(``123456789012345678901234567890`` as ``1.2345678901234568e+29``). So a text with a
run of 19 digits or more goes to the standard library, as does every text orjson
refuses (``NaN``, ``1e400``, a lone surrogate, a byte order mark, more than 1,024
levels): the standard library then reads it, or raises, as it always did. A task's
document reads six JSON texts (its result, three history entries, its arguments); the
standard library reads each in 1-3 µs here, orjson with the digit check in under one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

# Digits all read as zeros, so that one search finds any run of 19 of them: the
# shortest integer orjson may read as a float (-9223372036854775809).
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19


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


def loads(text: bytes | str, otherwise: Callable[[Any], Any] = json.loads) -> Any:
    """``otherwise(text)`` (json.loads): by orjson where orjson reads the same value."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _LONG_DIGIT_RUN not in raw.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the caller's decoder reads it, or raises its own error
    return otherwise(text)
