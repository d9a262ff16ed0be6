"""API errors: one small hierarchy, one JSON shape for every error the API answers."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, Response, jsonify, request
from kombu.exceptions import OperationalError
from werkzeug.exceptions import HTTPException

# Under this path errors answer in the API's JSON shape, and mutating calls need
# a token (webapp/auth.py).
API_PATH_PREFIX = "/api/"


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        retry_after_s: int | None = None,
        task_id: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s
        # The task the error is about, when the request made one (an unconfirmed send).
        self.task_id = task_id


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


# What a 401 names as the way to authenticate (RFC 9110 requires the header).
WWW_AUTHENTICATE = 'Bearer realm="taskrelay"'


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class TooManyRequests(ApiError):
    status, code = 429, "too_many_requests"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    retry_after_s: int | None = None,
    task_id: str | None = None,
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    if task_id is not None:
        body["task_id"] = task_id
    response = jsonify({"error": body})
    response.status_code = status
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(retry_after_s)
    return response


# Werkzeug's own errors (unknown route, wrong method, body too large) keep their
# status but answer in the API's shape under /api.
_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
}


def init_app(app: Flask) -> None:
    """Answer every error under API_PATH_PREFIX in the API's shape."""

    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> Response:
        response = error_response(
            error.status,
            error.code,
            error.message,
            error.field,
            error.retry_after_s,
            error.task_id,
        )
        if isinstance(error, Unauthorized):
            response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
        return response

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    @app.errorhandler(OperationalError)
    def handle_unreachable(error: Exception) -> Response:
        app.logger.warning("Redis or the broker is unreachable: %s", error)
        return error_response(
            503,
            ServiceUnavailable.code,
            "Redis or the task broker cannot be reached; try again shortly",
            retry_after_s=app.config["RETRY_AFTER_S"],
        )

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException) -> Response | HTTPException:
        if not request.path.startswith(API_PATH_PREFIX):
            return error
        status = error.code or 500
        message = error.description or error.name
        if status == 413:
            limit = app.config["MAX_CONTENT_LENGTH"]
            message = f"the request body is larger than the limit of {limit} bytes"
        response = error_response(status, _HTTP_CODES.get(status, "http_error"), message)
        headers = dict(error.get_headers())
        for name in ("Allow", "Retry-After"):
            if name in headers:
                response.headers[name] = headers[name]
        return response
