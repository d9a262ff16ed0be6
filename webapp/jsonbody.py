"""Reading a JSON request body: 415 if it is not JSON, 400 if it is not JSON we can keep.

Whatever a client sends is read or refused here, so nothing after this can fail on
it: the body is UTF-8 (RFC 8259), nests at most MAX_JSON_DEPTH deep (measured
before the parser recurses), has only finite numbers (``1e999`` would be stored as
``Infinity``, which no JSON reader, such as the dashboard's, accepts) and only
text that can be written as UTF-8 (no lone UTF-16 surrogate such as ``"\\ud800"``,
which would break every page that shows it).
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from webapp.errors import BadRequest, UnsupportedMediaType

# How deep arrays and objects may nest in a body. Validating, fingerprinting,
# storing and showing a body each recurse once per level, here and in the
# workers; 64 is far beyond any task's arguments and far below Python's
# recursion limit of 1000 frames.
MAX_JSON_DEPTH = 64

_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_CHANGE = {"[": 1, "{": 1, "]": -1, "}": -1}
# The escape of a UTF-16 surrogate, \ud800 to \udfff: the only way a UTF-8 text
# can carry one, and alone (not half of a pair) it is no character at all.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large for a 64-bit float")
    return value


# json.loads builds a decoder on every call given hooks; every POST parses a body.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def nesting_depth_exceeds(text: str, limit: int) -> bool:
    """Whether a JSON text nests arrays and objects deeper than `limit`, without parsing it.

    Brackets inside strings do not count: escaped backslashes and quotes are
    dropped first, so the remaining quotes delimit the strings. Every step runs
    in C, so a 1 MB body costs tens of milliseconds at worst.
    """
    if text.count("[") + text.count("{") <= limit:
        return False  # too few openers to nest deeper: the usual case, two counts
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    outside_strings = "".join(unescaped.split('"')[::2])
    brackets = _NOT_A_BRACKET.sub("", outside_strings)
    deepest = max(accumulate(map(_DEPTH_CHANGE.__getitem__, brackets)), default=0)
    return deepest > limit


def _has_lone_surrogate(text: str, body: Any) -> bool:
    if _SURROGATE_ESCAPE.search(text) is None:
        return False  # the usual case: no escape of a surrogate at all
    try:
        # A pair of escapes was joined into one character by the parser; a lone
        # one stays a surrogate, which UTF-8 cannot encode.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _body_within_limit() -> bytes:
    """The body, or 413 when it is over MAX_CONTENT_LENGTH, whether sized or chunked.

    Read from the server's own stream: every body is read once, here, so Werkzeug's
    limited stream and its cache of the data would only add to each request.
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    length = request.content_length
    if length is not None:
        if length > limit:
            raise RequestEntityTooLarge()
        sized = _read(length)
        if len(sized) < length:
            raise _ended_early(length)
        return sized
    # A chunked body has no length to check up front: read one byte past the limit
    # to tell whether it is over.
    raw = _read(limit + 1)
    if len(raw) > limit:
        raise RequestEntityTooLarge()
    return raw


def _read(size: int) -> bytes:
    try:
        data: bytes = request.environ["wsgi.input"].read(size)
    except (OSError, ValueError):
        # The client stopped sending mid-body: gevent's server raises, others read short.
        raise _ended_early(request.content_length) from None
    return data


def _ended_early(length: int | None) -> BadRequest:
    promised = f"the {length} bytes of its Content-Length" if length is not None else "its end"
    return BadRequest(f"the body ended before {promised}")


def _parse(text: str) -> Any:
    if nesting_depth_exceeds(text, MAX_JSON_DEPTH):
        raise BadRequest(f"the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = _DECODER.decode(text)
    except ValueError as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    except RecursionError:
        # Only a text that is not JSON can get past the depth check this deep.
        raise BadRequest("the body is not valid JSON: it nests too deep") from None
    if _has_lone_surrogate(text, body):
        raise BadRequest(
            "the body has a lone UTF-16 surrogate escape (\\ud800 to \\udfff without its "
            "pair), which is not a character; send text as valid Unicode"
        )
    return body


def read_json_object() -> dict[str, Any]:
    if not request.is_json:
        raise UnsupportedMediaType(
            "send the body as JSON with the header Content-Type: application/json"
        )
    try:
        # UTF-8 only, as RFC 8259 asks; a leading byte order mark is tolerated.
        text = _body_within_limit().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadRequest(f"the body is not UTF-8: {error}") from None
    body = _parse(text)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body
