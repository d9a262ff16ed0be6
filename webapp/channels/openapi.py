"""The channels part of the OpenAPI document.

Names, patterns and message ids are described by the rules ``tasks.channels``
checks them with, `limit` by the bounds ``webapp.channels.read_model`` reads
history with, and every channel and stream bound by the app's settings, which
``webapp.channels.publish`` and ``webapp.sse_slots`` enforce; reserved names are
refused as well, which a pattern cannot say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks import channels
from webapp import durable_accept, openapi
from webapp.channels.publish import FIELDS
from webapp.channels.read_model import HISTORY_DEFAULT, HISTORY_MAX

_EVENT_STREAM = openapi.event_stream(
    "event stream: `event: message` with `id: <message id>` and the message as data; "
    "`event: gap` first when messages after Last-Event-ID are no longer retained"
)


def schemas() -> dict[str, openapi.Schema]:
    return {
        "ChannelMessage": {
            "type": "object",
            "required": ["id", "channel", "data", "published_at"],
            "properties": {
                "id": _message_id(),
                "channel": {"type": "string"},
                "data": {},
                "published_at": {"type": "string", "format": "date-time"},
            },
        }
    }


def paths(config: Mapping[str, Any]) -> dict[str, openapi.Schema]:
    channel = _channel_param()
    stream_errors = _stream_errors(config)
    summary_item = {
        "type": "object",
        "required": ["name", "length", "last_id", "subscribers"],
        "properties": {
            "name": {"type": "string"},
            "length": {"type": "integer"},
            "last_id": {"oneOf": [_message_id(), {"type": "null"}]},
            "subscribers": {"type": "integer"},
        },
    }
    listing = {
        "type": "object",
        "required": ["channels", "next_cursor"],
        "properties": {
            "channels": {"type": "array", "items": summary_item},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
    accepted = {
        "type": "object",
        "required": ["id", "channel"],
        "properties": {"id": _message_id(), "channel": {"type": "string"}},
    }
    body = {
        "type": "object",
        "required": ["data"],
        "additionalProperties": False,
        "properties": {name: {} for name in FIELDS},
    }
    history = {
        "type": "object",
        "properties": {
            "channel": {"type": "string"},
            "messages": {"type": "array", "items": openapi.ref("ChannelMessage")},
            "gap": {"type": "boolean"},
        },
    }
    return {
        "/api/channels": {
            "get": {
                "summary": (
                    "A page of channels in name order, with their retained length, last id "
                    "and subscribers; pass `next_cursor` as `cursor` for the next page (null: "
                    "no more). A channel idle for "
                    f"{config['CHANNEL_IDLE_TTL_S']} s is gone; at most "
                    f"{config['CHANNEL_MAX_CHANNELS']} exist"
                ),
                "parameters": [
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "the `next_cursor` of the previous page",
                        "schema": {"type": "string", "pattern": f"^{channels.NAME_PATTERN}$"},
                    },
                    openapi.limit_param(
                        default=config["CHANNEL_LIST_DEFAULT"], maximum=config["CHANNEL_LIST_MAX"]
                    ),
                ],
                "responses": {
                    "200": openapi.json_response(listing, "a page of channels"),
                    **openapi.errors(400, reasons={400: "invalid cursor or limit"}),
                },
            }
        },
        "/api/channels/{channel}/messages": {
            "post": {
                "summary": "Publish a message to every subscriber of a channel",
                "description": (
                    f"`data` is at most {config['CHANNEL_MESSAGE_MAX_BYTES']} bytes as compact "
                    f"JSON. A channel retains its newest {config['CHANNEL_RETENTION']} messages "
                    f"and at most {config['CHANNEL_RETENTION_BYTES']} bytes of them, and expires "
                    f"{config['CHANNEL_IDLE_TTL_S']} s after its last message. At most "
                    f"{config['CHANNEL_MAX_CHANNELS']} channels exist: a new name past that is "
                    "409 until idle channels expire."
                ),
                "parameters": [channel],
                "requestBody": openapi.json_body(body, max_bytes=config["MAX_CONTENT_LENGTH"]),
                "responses": {
                    "202": openapi.json_response(accepted, "accepted for relay"),
                    **openapi.errors(
                        *openapi.JSON_BODY_ERRORS,
                        409,
                        503,
                        reasons={
                            400: "invalid channel name or body",
                            409: (
                                f"a new channel name while {config['CHANNEL_MAX_CHANNELS']} "
                                "channels exist"
                            ),
                            413: (
                                f"body over {config['MAX_CONTENT_LENGTH']} bytes, or `data` over "
                                f"{config['CHANNEL_MESSAGE_MAX_BYTES']} bytes as compact JSON"
                            ),
                            503: durable_accept.ACCEPT_503_REASON,
                        },
                    ),
                },
            },
            "get": {
                "summary": (
                    "Retained messages, oldest first; a channel retains its newest "
                    f"{config['CHANNEL_RETENTION']}, at most {config['CHANNEL_RETENTION_BYTES']} "
                    "bytes of them"
                ),
                "parameters": [
                    channel,
                    {"name": "after", "in": "query", "schema": _message_id()},
                    openapi.limit_param(default=HISTORY_DEFAULT, maximum=HISTORY_MAX),
                ],
                "responses": {
                    "200": openapi.json_response(
                        history, "history; `gap` when `after` is no longer retained"
                    ),
                    **openapi.errors(400, reasons={400: "invalid channel, id or limit"}),
                },
            },
        },
        "/api/channels/{channel}/events": {
            "get": {
                "summary": "Server-Sent Events of a channel, resumable with Last-Event-ID",
                "parameters": [channel, *_resume_params()],
                "responses": {
                    "200": _EVENT_STREAM,
                    **openapi.errors(400, reasons={400: "invalid channel or id"}),
                    **stream_errors,
                },
            }
        },
        "/api/events": {
            "get": {
                "summary": "Server-Sent Events of every channel matching a pattern",
                "parameters": [
                    {
                        "name": "pattern",
                        "in": "query",
                        "required": True,
                        "description": "dot-separated segments; `*` matches one segment",
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": channels.PATTERN_MAX_CHARS,
                        },
                    },
                    *_resume_params(),
                ],
                "responses": {
                    "200": _EVENT_STREAM,
                    **openapi.errors(400, reasons={400: "invalid pattern or id"}),
                    **stream_errors,
                },
            }
        },
    }


def _stream_errors(config: Mapping[str, Any]) -> dict[str, openapi.Schema]:
    """What ``webapp.sse_slots`` answers past its bounds, with a Retry-After header."""
    answers = openapi.errors(
        429,
        503,
        reasons={
            429: (
                f"this client (by address) holds {config['SSE_MAX_STREAMS_PER_CLIENT']} event "
                "streams on this web process already"
            ),
            503: (
                f"this web process holds {config['SSE_MAX_STREAMS']} event streams already, "
                "or Redis cannot be reached"
            ),
        },
    )
    retry_after = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return {status: {**answer, "headers": retry_after} for status, answer in answers.items()}


def _channel_param() -> openapi.Schema:
    return openapi.path_param(
        "channel",
        {"type": "string", "pattern": f"^{channels.NAME_PATTERN}$"},
        f"1 to {channels.NAME_MAX_CHARS} letters, digits and . _ - :, "
        "starting with a letter or digit; names of Celery's and taskrelay's own keys "
        "are refused",
    )


def _message_id() -> openapi.Schema:
    return {"type": "string", "pattern": f"^{channels.MESSAGE_ID_PATTERN}$"}


def _resume_params() -> list[openapi.Schema]:
    return [
        {"name": "Last-Event-ID", "in": "header", "schema": _message_id()},
        {"name": "last_event_id", "in": "query", "schema": _message_id()},
    ]
