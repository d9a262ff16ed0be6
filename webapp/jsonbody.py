"""Reading a JSON request body: 415 if it is not JSON, 400 if it does not parse."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from webapp.errors import BadRequest, UnsupportedMediaType


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_json_object() -> dict[str, Any]:
    if not request.is_json:
        raise UnsupportedMediaType(
            "send the body as JSON with the header Content-Type: application/json"
        )
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH raises 413
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body
