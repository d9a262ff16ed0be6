"""The schedules part of the OpenAPI document: paths, the schedule body, the document and a run.

Every bound comes from what validates it (``tasks.schedules.model``, the list limits
of ``webapp.schedules.api``) and the task names from the registry, so the document
cannot promise what the API refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks import records, registry
from tasks.schedules import fire
from tasks.schedules.model import (
    EVERY_S_MAX,
    EVERY_S_MIN,
    FIELDS,
    INSTANT_MAX,
    INSTANT_MIN,
    MISFIRE_POLICIES,
    NAME_MAX_CHARS,
    NAME_PATTERN,
)
from webapp import openapi
from webapp.schedules.api import (
    RUN_LIST_DEFAULT,
    RUN_LIST_MAX,
    SCHEDULE_LIST_DEFAULT,
    SCHEDULE_LIST_MAX,
)
from webapp.schedules.read_model import NEXT_FIRE_TIMES

_TEXT: openapi.Schema = {"type": "string"}
_NULLABLE_TEXT: openapi.Schema = {"type": ["string", "null"]}
_INSTANT: openapi.Schema = {
    "type": ["string", "null"],
    "format": "date-time",
    "description": (
        f"ISO 8601 with a time zone, from {INSTANT_MIN.isoformat()} to {INSTANT_MAX.isoformat()}"
    ),
}


def schemas() -> dict[str, openapi.Schema]:
    return {
        "ScheduleBody": _body(required=["name", "task"]),
        "SchedulePatch": _body(required=[]),
        "Schedule": _schedule(),
        "ScheduleRun": _run(),
    }


def paths(config: Mapping[str, Any]) -> dict[str, openapi.Schema]:
    schedule = openapi.ref("Schedule")
    run = openapi.ref("ScheduleRun")
    ref = openapi.path_param("ref", _TEXT, "the schedule's id or its name")
    body_errors = (*openapi.JSON_BODY_ERRORS, 404)
    max_bytes = config["MAX_CONTENT_LENGTH"]
    return {
        "/api/schedules": {
            "post": {
                "summary": "Create a schedule of a registered task",
                "requestBody": openapi.json_body(openapi.ref("ScheduleBody"), max_bytes=max_bytes),
                "responses": {
                    "201": openapi.json_response(schedule, "created"),
                    **openapi.errors(
                        *body_errors, 409, 503, reasons={404: "unknown task", 409: "name taken"}
                    ),
                },
            },
            "get": {
                "summary": "Schedules, newest first",
                "parameters": [
                    openapi.limit_param(default=SCHEDULE_LIST_DEFAULT, maximum=SCHEDULE_LIST_MAX)
                ],
                "responses": {
                    "200": openapi.json_response(_list("schedules", schedule), "schedules"),
                    **openapi.errors(400),
                },
            },
        },
        "/api/schedules/{ref}": {
            "get": {
                "summary": "A schedule, with its next fire times and its newest run",
                "parameters": [ref],
                "responses": {
                    "200": openapi.json_response(schedule, "the schedule"),
                    **openapi.errors(404),
                },
            },
            "patch": {
                "summary": "Change a schedule: any field; enabled false pauses, true resumes",
                "parameters": [ref],
                "requestBody": openapi.json_body(openapi.ref("SchedulePatch"), max_bytes=max_bytes),
                "responses": {
                    "200": openapi.json_response(schedule, "the schedule as changed"),
                    **openapi.errors(*body_errors, 409, 503, reasons={409: "name taken"}),
                },
            },
            "delete": {
                "summary": "Delete a schedule and its runs (their tasks stay)",
                "parameters": [ref],
                "responses": {"204": {"description": "deleted"}, **openapi.errors(404)},
            },
        },
        "/api/schedules/{ref}/run": {
            "post": {
                "summary": "Run the schedule's task now (also when paused)",
                "parameters": [ref],
                "responses": {
                    "202": openapi.json_response(run, "the run, its task accepted"),
                    **openapi.errors(400, 404, 503),
                },
            }
        },
        "/api/schedules/{ref}/runs": {
            "get": {
                "summary": "The schedule's runs, newest first, with their tasks' states",
                "parameters": [
                    ref,
                    openapi.limit_param(default=RUN_LIST_DEFAULT, maximum=RUN_LIST_MAX),
                ],
                "responses": {
                    "200": openapi.json_response(_list("runs", run), "runs"),
                    **openapi.errors(400, 404),
                },
            }
        },
    }


def _body(*, required: list[str]) -> openapi.Schema:
    fields: dict[str, openapi.Schema] = {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": NAME_MAX_CHARS,
            "pattern": f"^{NAME_PATTERN}$",
            "description": "unique; not shaped like a UUID",
        },
        "task": {"type": "string", "enum": [spec.name for spec in registry.all_specs()]},
        "args": {"type": "array", "description": "checked against the task as POST /api/tasks"},
        "kwargs": {"type": "object"},
        "cron": {
            "type": ["string", "null"],
            "description": "5 fields: minute hour day-of-month month day-of-week",
        },
        "timezone": {"type": "string", "description": "IANA name, such as Europe/Berlin"},
        "every_s": {"type": ["integer", "null"], "minimum": EVERY_S_MIN, "maximum": EVERY_S_MAX},
        "enabled": {"type": "boolean"},
        "start_at": _INSTANT,
        "end_at": _INSTANT,
        "misfire": {"type": "string", "enum": list(MISFIRE_POLICIES)},
    }
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": {name: fields[name] for name in FIELDS},
        "description": "a schedule needs either cron or every_s; giving one clears the other",
    }


def _schedule() -> openapi.Schema:
    return {
        "type": "object",
        "required": ["id", "name", "task", "enabled", "next_fire_times", "links"],
        "properties": {
            "id": _TEXT,
            "name": _TEXT,
            "task": _TEXT,
            "args": {"type": "array"},
            "kwargs": {"type": "object"},
            "cron": _NULLABLE_TEXT,
            "timezone": _TEXT,
            "every_s": {"type": ["integer", "null"]},
            "enabled": {"type": "boolean"},
            "start_at": _NULLABLE_TEXT,
            "end_at": _NULLABLE_TEXT,
            "misfire": {"type": "string", "enum": list(MISFIRE_POLICIES)},
            "created_at": _TEXT,
            "updated_at": _TEXT,
            "next_fire_times": {
                "type": "array",
                "maxItems": NEXT_FIRE_TIMES,
                "items": _TEXT,
                "description": "the next slots, in the schedule's zone; none while paused",
            },
            "last_run": {"oneOf": [{"type": "null"}, openapi.ref("ScheduleRun")]},
            "links": {"type": "object"},
        },
    }


def _run() -> openapi.Schema:
    return {
        "type": "object",
        "required": ["task_id", "trigger", "fired_at", "state"],
        "properties": {
            "task_id": _TEXT,
            "trigger": {"type": "string", "enum": [fire.SCHEDULED, fire.MANUAL]},
            "slot": {**_NULLABLE_TEXT, "description": "the slot fired; null when run by hand"},
            "fired_at": _TEXT,
            "lag_s": {"type": ["number", "null"], "description": "fired_at minus slot"},
            "scheduler": _NULLABLE_TEXT,
            "state": {
                "type": ["string", "null"],
                "enum": [*records.STATES, None],
                "description": "the task's state; null once its record expired",
            },
            "links": {"type": "object"},
        },
    }


def _list(name: str, item: openapi.Schema) -> openapi.Schema:
    return {
        "type": "object",
        "required": [name],
        "properties": {name: {"type": "array", "items": item}},
    }
