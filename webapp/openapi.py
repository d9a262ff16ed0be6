"""The OpenAPI 3.1 document of the HTTP API, built from the task registry."""

from __future__ import annotations

from typing import Any

from tasks import records, registry
from webapp.channels import openapi as openapi_channels

_ERROR = {"$ref": "#/components/schemas/Error"}
_TASK = {"$ref": "#/components/schemas/Task"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
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
    return {str(status): _json(_ERROR, reasons[status]) for status in statuses}


def _task_id_param() -> dict[str, Any]:
    return {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _limit_param() -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
    }


def _schemas() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
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
                    },
                }
            },
        },
        "Submission": {
            "type": "object",
            "required": ["task"],
            "additionalProperties": False,
            "properties": {
                "task": {"type": "string", "enum": [s.name for s in registry.all_specs()]},
                "args": {"type": "array"},
                "kwargs": {"type": "object"},
                "countdown": {"type": "number", "minimum": 0},
                "eta": {"type": "string", "format": "date-time"},
                "priority": {"type": "integer", "minimum": 0, "maximum": 9},
            },
        },
        "Task": {
            "type": "object",
            "required": ["id", "task", "state"],
            "properties": {
                "id": {"type": "string"},
                "task": nullable_text,
                "state": {"type": "string", "enum": list(records.STATES)},
                "progress": {"type": ["object", "null"]},
                "result": {},
                "error": {"type": ["object", "null"]},
                "retries": {"type": "integer"},
                "dead_letter": {"type": "boolean"},
                "submitted_at": nullable_text,
                "started_at": nullable_text,
                "finished_at": nullable_text,
                "worker": nullable_text,
            },
        },
    }


def _operations_paths() -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "/api/stats": {
            "get": {
                "summary": "Queue depths and tasks per minute, for the dashboard",
                "responses": {"200": _json({"type": "object"}, "current figures")},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness of this web process",
                "responses": {"200": _json({"type": "object"}, "alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: Redis reachable, a live worker on each queue",
                "responses": {
                    "200": _json({"type": "object"}, "ready, with each check"),
                    "503": _json({"type": "object"}, "not ready, with the failing checks"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "exposition format", "content": text}},
            }
        },
    }


def document() -> dict[str, Any]:
    mutating = _errors(400, 401, 403, 404, 409, 413, 415, 429, 503)
    return {
        "openapi": "3.1.0",
        "info": {"title": "taskrelay", "version": "0.1.0"},
        "components": {
            "schemas": {**_schemas(), **openapi_channels.schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            **openapi_channels.paths(),
            **_operations_paths(),
            "/api/tasks": {
                "post": {
                    "summary": "Submit a task",
                    "parameters": [
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Submission"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json(_TASK, "accepted"),
                        "200": _json(_TASK, "the task first submitted with this key"),
                        **mutating,
                    },
                },
                "get": {
                    "summary": "Recent tasks, newest first",
                    "parameters": [
                        {
                            "name": "state",
                            "in": "query",
                            "schema": {"type": "string", "enum": list(records.STATES)},
                        },
                        {"name": "task", "in": "query", "schema": {"type": "string"}},
                        _limit_param(),
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "tasks"),
                        **_errors(400),
                    },
                },
            },
            "/api/tasks/{task_id}": {
                "get": {
                    "summary": "A task's state",
                    "parameters": [_task_id_param()],
                    "responses": {"200": _json(_TASK, "the task"), **_errors(404)},
                },
                "delete": {
                    "summary": "Revoke a task",
                    "parameters": [_task_id_param()],
                    "responses": {"202": _json(_TASK, "revoked"), **_errors(401, 403, 404, 409)},
                },
            },
            "/api/tasks/{task_id}/events": {
                "get": {
                    "summary": "Server-Sent Events of a task's state",
                    "parameters": [_task_id_param()],
                    "responses": {
                        "200": {
                            "description": "event stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_errors(404),
                    },
                }
            },
            "/api/registry": {
                "get": {
                    "summary": "Tasks HTTP may trigger, with their parameters",
                    "responses": {"200": _json({"type": "object"}, "the registry")},
                }
            },
            "/api/deadletters": {
                "get": {
                    "summary": "Dead letters, newest first",
                    "parameters": [_limit_param()],
                    "responses": {"200": _json({"type": "object"}, "dead letters"), **_errors(400)},
                }
            },
            "/api/deadletters/{task_id}/replay": {
                "post": {
                    "summary": "Run a dead letter again as a new task",
                    "parameters": [_task_id_param()],
                    "responses": {
                        "202": _json(_TASK, "the new task"),
                        **_errors(401, 403, 404, 503),
                    },
                }
            },
            "/api/deadletters/{task_id}": {
                "delete": {
                    "summary": "Discard a dead letter",
                    "parameters": [_task_id_param()],
                    "responses": {"204": {"description": "discarded"}, **_errors(401, 403, 404)},
                }
            },
        },
    }
