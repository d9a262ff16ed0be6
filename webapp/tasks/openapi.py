"""The tasks part of the OpenAPI document: paths, the submission and each task's arguments.

Every bound comes from what validates it: the app's settings, ``webapp.tasks.request``
and the task registry (each task's parameters, read from its signature), so the
document cannot promise what the API refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks import records, registry
from webapp import openapi
from webapp.tasks.request import (
    FIELDS,
    PRIORITY_RANGE,
)

# The JSON Schema keyword that bounds the length of each JSON type with a length.
_LENGTH_KEYWORDS = {"string": "maxLength", "array": "maxItems", "object": "maxProperties"}


def schemas(config: Mapping[str, Any]) -> dict[str, openapi.Schema]:
    specs = registry.all_specs()
    return {
        "Submission": _submission(specs, max_delay_s=config["MAX_DELAY_S"]),
        "Task": _task(),
        **{_arguments_name(spec): _arguments(spec) for spec in specs},
    }


def paths(config: Mapping[str, Any]) -> dict[str, openapi.Schema]:
    task = openapi.ref("Task")
    task_id = openapi.path_param("task_id", {"type": "string"})
    limit = openapi.limit_param(
        default=config["TASK_LIST_DEFAULT"], maximum=config["TASK_LIST_MAX"]
    )
    return {
        "/api/tasks": {
            "post": {
                "summary": "Submit a task",
                "parameters": [openapi.idempotency_key_parameter("task")],
                "requestBody": openapi.json_body(
                    openapi.ref("Submission"), max_bytes=config["MAX_CONTENT_LENGTH"]
                ),
                "responses": {
                    "202": openapi.json_response(task, "accepted"),
                    "200": openapi.json_response(task, "the task first submitted with this key"),
                    **openapi.errors(*openapi.JSON_BODY_ERRORS, 404, 409, 503),
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
                    limit,
                ],
                "responses": {
                    "200": openapi.json_response({"type": "object"}, "tasks"),
                    **openapi.errors(400),
                },
            },
        },
        "/api/tasks/{task_id}": {
            "get": {
                "summary": "A task's state",
                "parameters": [task_id],
                "responses": {
                    "200": openapi.json_response(task, "the task"),
                    **openapi.errors(404),
                },
            },
            "delete": {
                "summary": "Revoke a task",
                "parameters": [task_id],
                "responses": {
                    "202": openapi.json_response(task, "revoked"),
                    **openapi.errors(404, 409),
                },
            },
        },
        "/api/tasks/{task_id}/events": {
            "get": {
                "summary": "Server-Sent Events of a task's state",
                "parameters": [task_id],
                "responses": {
                    "200": openapi.event_stream(
                        "event stream: `event: state` with the task as data, now and "
                        "whenever it changes, until it has finished"
                    ),
                    **openapi.errors(404),
                },
            }
        },
        "/api/registry": {
            "get": {
                "summary": "Tasks HTTP may trigger, with their parameters",
                "responses": {"200": openapi.json_response({"type": "object"}, "the registry")},
            }
        },
        "/api/deadletters": {
            "get": {
                "summary": "Dead letters, newest first",
                "parameters": [limit],
                "responses": {
                    "200": openapi.json_response({"type": "object"}, "dead letters"),
                    **openapi.errors(400),
                },
            }
        },
        "/api/deadletters/{task_id}/replay": {
            "post": {
                "summary": "Run a dead letter again as a new task",
                "parameters": [task_id],
                "responses": {
                    "202": openapi.json_response(task, "the new task"),
                    **openapi.errors(404, 503),
                },
            }
        },
        "/api/deadletters/{task_id}": {
            "delete": {
                "summary": "Discard a dead letter",
                "parameters": [task_id],
                "responses": {"204": {"description": "discarded"}, **openapi.errors(404)},
            }
        },
    }


def _submission(specs: list[registry.TaskSpec], *, max_delay_s: float) -> openapi.Schema:
    fields: dict[str, openapi.Schema] = {
        "task": {"type": "string", "enum": [spec.name for spec in specs]},
        "args": {"type": "array"},
        "kwargs": {"type": "object"},
        "countdown": {"type": "number", "minimum": 0, "maximum": max_delay_s},
        "eta": {"type": "string", "format": "date-time"},
        "priority": {
            "type": "integer",
            "minimum": min(PRIORITY_RANGE),
            "maximum": max(PRIORITY_RANGE),
        },
    }
    return {
        "type": "object",
        "required": ["task"],
        "additionalProperties": False,
        "properties": {name: fields[name] for name in FIELDS},
        # Each task takes its own arguments, by position or by name.
        "oneOf": [
            {
                "properties": {
                    "task": {"const": spec.name},
                    "args": _positional(spec),
                    "kwargs": openapi.ref(_arguments_name(spec)),
                }
            }
            for spec in specs
        ],
    }


def _positional(spec: registry.TaskSpec) -> openapi.Schema:
    """A task's arguments by position: at most one for each parameter, in order."""
    schema: openapi.Schema = {"type": "array", "maxItems": len(spec.params)}
    if spec.params:  # JSON Schema wants prefixItems non-empty
        schema["prefixItems"] = [_param(param) for param in spec.params]
    return schema


def _arguments_name(spec: registry.TaskSpec) -> str:
    return f"Arguments.{spec.name}"


def _arguments(spec: registry.TaskSpec) -> openapi.Schema:
    """A task's keyword arguments; any of them may come by position in `args` instead."""
    return {
        "type": "object",
        "description": spec.description,
        "additionalProperties": False,
        "properties": {param.name: _param(param) for param in spec.params},
    }


def _param(param: registry.Param) -> openapi.Schema:
    """One parameter as JSON Schema, with the bounds ``Param.check`` applies."""
    declared = param.to_json()
    schema: openapi.Schema = {"type": declared["type"]}
    schema.update({key: declared[key] for key in ("minimum", "maximum") if key in declared})
    if not param.required:
        schema["default"] = declared["default"]
    if param.max_length is not None:
        schema[_LENGTH_KEYWORDS[declared["type"]]] = param.max_length
    return schema


def _task() -> openapi.Schema:
    nullable_text = {"type": ["string", "null"]}
    return {
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
    }
