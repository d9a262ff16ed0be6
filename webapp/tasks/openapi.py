"""The tasks part of the OpenAPI document: paths, the submission and each task's arguments.

Every bound comes from what validates it: the app's settings, ``webapp.tasks.request``
and the task registry (each task's parameters, read from its signature), so the
document cannot promise what the API refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks import defaults, records, registry
from tasks.celery_ext import liveness
from webapp import durable_accept, openapi
from webapp.tasks.request import (
    FIELDS,
    PRIORITY_RANGE,
)

# The JSON Schema keyword that bounds the length of each JSON type with a length.
# The paths under /api/tasks/ that are not a task's (webapp/tasks/api.py): a GET of
# /api/tasks/events is every task's stream, not the task whose id is "events".
NOT_TASK_IDS = ("counts", "events", "stats")
_LENGTH_KEYWORDS = {"string": "maxLength", "array": "maxItems", "object": "maxProperties"}


def schemas(config: Mapping[str, Any]) -> dict[str, openapi.Schema]:
    specs = registry.all_specs()
    return {
        "Submission": _submission(specs, max_delay_s=config["MAX_DELAY_S"]),
        "Task": _task(),
        "TaskWithHistory": _task_with_history(),
        "TaskPage": _task_page(),
        "TaskCounts": _counts(),
        "TaskEvent": _event(),
        "Workers": _workers(),
        "TaskStats": _stats(),
        **{_arguments_name(spec): _arguments(spec) for spec in specs},
    }


def paths(config: Mapping[str, Any]) -> dict[str, openapi.Schema]:
    task = openapi.ref("Task")
    task_id = openapi.path_param("task_id", {"type": "string"})
    # A task whose id names another path under /api/tasks/ cannot be read at its own.
    readable_task_id = openapi.path_param(
        "task_id",
        {"type": "string", "not": {"enum": list(NOT_TASK_IDS)}},
        "any id but " + ", ".join(f"`{name}`" for name in NOT_TASK_IDS) + ": paths of their own",
    )
    limit = openapi.limit_param(
        default=config["TASK_LIST_DEFAULT"], maximum=config["TASK_LIST_MAX"]
    )
    state = {
        "name": "state",
        "in": "query",
        "schema": {"type": "string", "enum": list(records.STATES)},
    }
    name = {
        "name": "task",
        "in": "query",
        "description": "a task's public name",
        "schema": {"type": "string"},
    }
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
                    **openapi.errors(
                        *openapi.JSON_BODY_ERRORS,
                        404,
                        409,
                        503,
                        reasons={503: durable_accept.ACCEPT_503_REASON},
                    ),
                },
            },
            "get": {
                "summary": "Tasks newest first, filtered, in pages, with counts per state",
                "description": (
                    "Read from indexes kept as records change, over the records still kept "
                    f"({defaults.TASK_RECORD_TTL_S} s after submission). Pages follow "
                    "`next_cursor` and stay exact while tasks arrive: no task is skipped "
                    "or shown twice. `counts` are for the `task` filter (else all tasks)."
                ),
                "parameters": [
                    state,
                    name,
                    {
                        "name": "q",
                        "in": "query",
                        "description": (
                            "a task id prefix, searched within the other filters; of many "
                            f"matches the first {defaults.TASK_SEARCH_MAX_MATCHES} in id "
                            "order are considered"
                        ),
                        "schema": {"type": "string", "minLength": 1, "maxLength": 64},
                    },
                    openapi.cursor_param(),
                    limit,
                ],
                "responses": {
                    "200": openapi.json_response(openapi.ref("TaskPage"), "a page of tasks"),
                    **openapi.errors(400, reasons={400: "invalid state, q, cursor or limit"}),
                },
            },
        },
        "/api/tasks/counts": {
            "get": {
                "summary": "How many tasks are in each state (and in all)",
                "parameters": [name],
                "responses": {
                    "200": openapi.json_response(openapi.ref("TaskCounts"), "the counts")
                },
            }
        },
        "/api/tasks/events": {
            "get": {
                "summary": "Server-Sent Events of every task's state changes, resumable",
                "parameters": openapi.last_event_id_params(
                    {"type": "string", "pattern": "^[0-9]+-[0-9]+$"}
                ),
                "responses": {
                    "200": openapi.event_stream(
                        "event stream: `event: task` with a TaskEvent as data, for every new "
                        "task and every state change, each with its `id:`; resumes after "
                        f"Last-Event-ID from the newest {defaults.TASK_EVENTS_MAX_ENTRIES} "
                        "changes kept; a keep-alive comment between events"
                    ),
                    **openapi.errors(400, 429, 503),
                },
            }
        },
        "/api/tasks/stats": {
            "get": {
                "summary": "Throughput and wait/run percentiles per task name, per minute",
                "parameters": [
                    {
                        "name": "window",
                        "in": "query",
                        "description": "seconds back from now, in whole minutes",
                        "schema": {
                            "type": "integer",
                            "minimum": defaults.TASK_STATS_BUCKET_S,
                            "maximum": defaults.TASK_STATS_WINDOW_MAX_S,
                            "default": defaults.TASK_STATS_WINDOW_MAX_S,
                        },
                    }
                ],
                "responses": {
                    "200": openapi.json_response(openapi.ref("TaskStats"), "the stats"),
                    **openapi.errors(400),
                },
            }
        },
        "/api/workers": {
            "get": {
                "summary": "Workers from their liveness beacons",
                "responses": {"200": openapi.json_response(openapi.ref("Workers"), "workers")},
            }
        },
        "/api/tasks/{task_id}": {
            "get": {
                "summary": "A task's state, with its history",
                "parameters": [readable_task_id],
                "responses": {
                    "200": openapi.json_response(openapi.ref("TaskWithHistory"), "the task"),
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


_NULLABLE_TEXT: openapi.Schema = {"type": ["string", "null"]}
_PERCENTILES: openapi.Schema = {
    "type": "object",
    "properties": {p: {"type": ["number", "null"]} for p in ("p50", "p95", "p99")},
}


def _history_entry() -> openapi.Schema:
    return {
        "type": "object",
        "required": ["state", "at"],
        "properties": {
            "state": {"type": "string", "enum": list(records.STATES)},
            "at": {"type": "string", "format": "date-time"},
            "retries": {"type": "integer"},
            "error": {"type": ["object", "null"]},
            "progress": {"type": ["object", "null"]},
            "worker": _NULLABLE_TEXT,
        },
    }


def _task_with_history() -> openapi.Schema:
    return {
        "allOf": [openapi.ref("Task")],
        "properties": {
            "history": {
                "type": "array",
                "maxItems": defaults.TASK_HISTORY_MAX_ENTRIES,
                "description": (
                    "the task's states, oldest first; the newest "
                    f"{defaults.TASK_HISTORY_MAX_ENTRIES} are kept, consecutive PROGRESS once"
                ),
                "items": _history_entry(),
            }
        },
    }


def _counts() -> openapi.Schema:
    return {
        "type": "object",
        "required": [*records.STATES, "all"],
        "properties": {key: {"type": "integer"} for key in (*records.STATES, "all")},
    }


def _task_page() -> openapi.Schema:
    return {
        "type": "object",
        "required": ["tasks", "next_cursor", "counts"],
        "properties": {
            "tasks": {"type": "array", "items": openapi.ref("Task")},
            "next_cursor": _NULLABLE_TEXT,
            "counts": openapi.ref("TaskCounts"),
        },
    }


def _event() -> openapi.Schema:
    entry = _history_entry()
    properties = {k: v for k, v in entry["properties"].items() if k != "error"}
    return {
        "type": "object",
        "required": ["id", "task", "state", "at"],
        "properties": {"id": {"type": "string"}, "task": {"type": "string"}, **properties},
    }


def _workers() -> openapi.Schema:
    return {
        "type": "object",
        "properties": {
            "workers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "queues", "running", "last_beat", "alive"],
                    "properties": {
                        "name": {"type": "string"},
                        "queues": {"type": "array", "items": {"type": "string"}},
                        "running": {"type": "integer"},
                        "last_beat": {"type": "string", "format": "date-time"},
                        "alive": {
                            "type": "boolean",
                            "description": (
                                f"false once its beacon is older than {liveness.BEACON_TTL_S} s "
                                "or it shut down; listed for "
                                f"{liveness.WORKER_FORGET_AFTER_S} s after its last beat"
                            ),
                        },
                    },
                },
            }
        },
    }


def _stats() -> openapi.Schema:
    return {
        "type": "object",
        "properties": {
            "window_s": {"type": "integer"},
            "bucket_s": {"type": "integer", "const": defaults.TASK_STATS_BUCKET_S},
            "tasks": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "throughput": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "at": {"type": "string", "format": "date-time"},
                                    "succeeded": {"type": "integer"},
                                    "failed": {"type": "integer"},
                                },
                            },
                        },
                        "wait_ms": _PERCENTILES,
                        "run_ms": _PERCENTILES,
                    },
                },
            },
        },
    }
