"""The pieces every part of the OpenAPI document shares: errors, JSON bodies, `limit`.

Each area describes its own paths beside its blueprint (``webapp/tasks/openapi.py``,
``webapp/channels/openapi.py``, ``webapp/ops/openapi.py``, which also assembles the
document). They all answer errors in one shape, read bodies and `limit` one way and
sit behind the same token check and rate limit, so those are described here once,
from the constants the code that does them uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp import auth
from webapp.jsonbody import MAX_JSON_DEPTH
from webapp.query import LIMIT_MIN
from webapp.tasks.request import IDEMPOTENCY_KEY_MAX_CHARS, IDEMPOTENCY_KEY_PATTERN

Schema = dict[str, Any]

# What each error status means wherever it is answered; an operation may word a
# status more precisely for itself.
REASONS = {
    400: "invalid request",
    401: "missing bearer token",
    403: "wrong bearer token",
    404: "not found",
    409: "conflict",
    413: "body too large",
    415: "body is not JSON",
    429: "rate limited",
    503: "broker unreachable",
}
# What reading a JSON body may answer (webapp/jsonbody.py).
JSON_BODY_ERRORS = (400, 413, 415)
# What the token check (webapp/auth.py) and the rate limit (webapp/limits.py) may
# answer to every request they guard.
GUARD_ERRORS = (401, 403, 429)
# What the token check may answer to a read, when reads need a token.
READ_GUARD_ERRORS = (401, 403)


def ref(schema: str) -> Schema:
    return {"$ref": f"#/components/schemas/{schema}"}


def schemas() -> dict[str, Schema]:
    """The error body, as ``webapp.errors.error_response`` writes it."""
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string"},
                        # An unconfirmed send names the task it may have enqueued.
                        "task_id": {"type": "string"},
                    },
                }
            },
        }
    }


def json_response(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def event_stream(description: str) -> Schema:
    return {
        "description": description,
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }


def errors(*statuses: int, reasons: Mapping[int, str] | None = None) -> dict[str, Schema]:
    """Error responses by status, worded by REASONS unless `reasons` words them here."""
    worded = {**REASONS, **(reasons or {})}
    return {str(status): json_response(ref("Error"), worded[status]) for status in statuses}


def json_body(schema: Schema, *, max_bytes: int) -> Schema:
    """A required JSON request body, as ``webapp.jsonbody`` reads it; a larger one is 413."""
    return {
        "required": True,
        "description": (
            f"a JSON object in UTF-8 of at most {max_bytes} bytes, nesting arrays and objects "
            f"at most {MAX_JSON_DEPTH} deep, with finite numbers and no lone UTF-16 surrogate"
        ),
        "content": {"application/json": {"schema": schema}},
    }


def limit_param(*, default: int, maximum: int) -> Schema:
    """The `limit` query parameter, as ``webapp.query.limit_arg`` reads it."""
    return {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": LIMIT_MIN, "maximum": maximum, "default": default},
    }


def cursor_param() -> Schema:
    """The `cursor` query parameter of a paged list: an earlier page's `next_cursor`."""
    return {
        "name": "cursor",
        "in": "query",
        "description": "the `next_cursor` of the previous page (opaque); a bad one is 400",
        "schema": {"type": "string"},
    }


def last_event_id_params(schema: Schema) -> list[Schema]:
    """Where a resuming event stream takes the last id it saw: the header, or the query."""
    return [
        {"name": "Last-Event-ID", "in": "header", "schema": schema},
        {"name": "last_event_id", "in": "query", "schema": schema},
    ]


def path_param(name: str, schema: Schema, description: str | None = None) -> Schema:
    param: Schema = {"name": name, "in": "path", "required": True, "schema": schema}
    if description is not None:
        param["description"] = description
    return param


def add_guard_errors(paths: dict[str, Schema], *, reads_closed: bool) -> dict[str, Schema]:
    """Document what the token check and the rate limit may answer to each operation.

    Writes may be 401, 403 and 429; reads 401 and 403 when they need a token.
    """
    for path, operations in paths.items():
        for method, operation in operations.items():
            statuses: tuple[int, ...]
            if auth.guards(method.upper(), path):
                statuses = GUARD_ERRORS
            elif reads_closed and not auth.always_open(path):
                statuses = READ_GUARD_ERRORS
            else:
                continue
            operation["responses"] = {**errors(*statuses), **operation["responses"]}
    return paths


def idempotency_key_parameter(answers: str) -> dict[str, Any]:
    """The Idempotency-Key header, as ``webapp/tasks/request.py`` checks it."""
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "description": f"printable ASCII, taken verbatim; the same key answers the same {answers}",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": IDEMPOTENCY_KEY_MAX_CHARS,
            "pattern": f"^{IDEMPOTENCY_KEY_PATTERN}$",
        },
    }
