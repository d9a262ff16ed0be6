"""The channels part of the OpenAPI document."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_MESSAGE = {"$ref": "#/components/schemas/ChannelMessage"}
_EVENT_STREAM = {
    "description": (
        "event stream: `event: message` with `id: <message id>` and the message as data; "
        "`event: gap` first when messages after Last-Event-ID are no longer retained"
    ),
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ERROR, description)


def _channel_param() -> dict[str, Any]:
    return {
        "name": "channel",
        "in": "path",
        "required": True,
        "description": "1 to 64 letters, digits and . _ - :, starting with a letter or digit",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"},
    }


def _resume_params() -> list[dict[str, Any]]:
    message_id = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
    return [
        {"name": "Last-Event-ID", "in": "header", "schema": message_id},
        {"name": "last_event_id", "in": "query", "schema": message_id},
    ]


def schemas() -> dict[str, Any]:
    return {
        "ChannelMessage": {
            "type": "object",
            "required": ["id", "channel", "data", "published_at"],
            "properties": {
                "id": {"type": "string"},
                "channel": {"type": "string"},
                "data": {},
                "published_at": {"type": "string", "format": "date-time"},
            },
        }
    }


def paths() -> dict[str, Any]:
    mutating = {
        str(status): _error(reason)
        for status, reason in (
            (400, "invalid channel name or body"),
            (401, "missing bearer token"),
            (403, "wrong bearer token"),
            (413, "body too large"),
            (415, "body is not JSON"),
            (429, "rate limited"),
            (503, "broker unreachable; nothing was published"),
        )
    }
    accepted = {
        "type": "object",
        "required": ["id", "channel"],
        "properties": {"id": {"type": "string"}, "channel": {"type": "string"}},
    }
    return {
        "/api/channels": {
            "get": {
                "summary": "Channels with their retained length, last id and subscribers",
                "responses": {"200": _json({"type": "array"}, "channels")},
            }
        },
        "/api/channels/{channel}/messages": {
            "post": {
                "summary": "Publish a message to every subscriber of a channel",
                "parameters": [_channel_param()],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["data"],
                                "additionalProperties": False,
                                "properties": {"data": {}},
                            }
                        }
                    },
                },
                "responses": {"202": _json(accepted, "accepted for relay"), **mutating},
            },
            "get": {
                "summary": "Retained messages, oldest first",
                "parameters": [
                    _channel_param(),
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "channel": {"type": "string"},
                                "messages": {"type": "array", "items": _MESSAGE},
                                "gap": {"type": "boolean"},
                            },
                        },
                        "history; `gap` when `after` is no longer retained",
                    ),
                    "400": _error("invalid channel, id or limit"),
                },
            },
        },
        "/api/channels/{channel}/events": {
            "get": {
                "summary": "Server-Sent Events of a channel, resumable with Last-Event-ID",
                "parameters": [_channel_param(), *_resume_params()],
                "responses": {"200": _EVENT_STREAM, "400": _error("invalid channel or id")},
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
                        "schema": {"type": "string"},
                    },
                    *_resume_params(),
                ],
                "responses": {"200": _EVENT_STREAM, "400": _error("invalid pattern or id")},
            }
        },
    }
