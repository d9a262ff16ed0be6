"""Reading a JSON request body: 415 if it is not JSON, 400 if it does not parse."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from webapp.errors import BadRequest, UnsupportedMediaType


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _body_within_limit() -> bytes:
    """The body, or 413 when it is over MAX_CONTENT_LENGTH, whether sized or chunked."""
    if request.content_length is not None:
        return request.get_data(cache=True)  # Werkzeug refuses an oversized length
    # A chunked body has no length to check up front, and Werkzeug's limited stream
    # would silently cut it at the limit: read one byte past the limit to tell.
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    raw: bytes = request.environ["wsgi.input"].read(limit + 1)
    if len(raw) > limit:
        raise RequestEntityTooLarge()
    return raw


def read_json_object() -> dict[str, Any]:
    if not request.is_json:
        raise UnsupportedMediaType(
            "send the body as JSON with the header Content-Type: application/json"
        )
    raw = _body_within_limit()
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body
