"""The workflows part of the OpenAPI document: the description, the document, the paths.

The kinds, fields and limits come from ``tasks.workflows.description``, which
validates descriptions, and the task names from the registry; the document's
states from the read model that builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks import records, registry
from tasks.workflows import description, state
from webapp import durable_accept, openapi
from webapp.workflows.read_model import RECENT_LIMIT_DEFAULT, RECENT_LIMIT_MAX, STEP_STATES

_EVENT_STREAM = openapi.event_stream(
    "event stream: `event: workflow` with the workflow as data (first, whenever its state "
    "changes, and last), `event: step` with a step whenever it changes; ends once the "
    "workflow has ended"
)


def schemas() -> dict[str, openapi.Schema]:
    nullable_text = {"type": ["string", "null"]}
    return {
        "WorkflowTaskStep": {
            "type": "object",
            "description": (
                "a registered task; in a chain it receives the previous result as its first "
                "argument unless it is immutable"
            ),
            "required": ["task"],
            "additionalProperties": False,
            "properties": {
                "task": {"type": "string", "enum": [spec.name for spec in registry.all_specs()]},
                "args": {"type": "array"},
                "kwargs": {"type": "object"},
                "immutable": {"type": "boolean", "default": False},
            },
        },
        "WorkflowDescription": {
            "type": "object",
            "description": (
                "a chain (each step receives the previous result), a group (steps in "
                "parallel; its result is the list of theirs) or a chord (a group, then "
                f"'callback', which receives that list); nested at most {description.MAX_DEPTH} "
                f"deep, with at most {description.MAX_STEPS} task steps in all"
            ),
            "required": ["type", "steps"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "enum": list(description.KINDS)},
                "steps": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": description.MAX_STEPS,
                    "items": openapi.ref("WorkflowNode"),
                },
                "callback": {**openapi.ref("WorkflowNode"), "description": "a chord's only"},
            },
        },
        "WorkflowNode": {
            "oneOf": [openapi.ref("WorkflowTaskStep"), openapi.ref("WorkflowDescription")]
        },
        "WorkflowStep": {
            "type": "object",
            "required": ["index", "path", "task", "task_id", "state"],
            "properties": {
                "index": {"type": "integer"},
                "path": {"type": "string"},
                "task": {"type": "string"},
                "task_id": {"type": "string"},
                "depends_on": {"type": "array", "items": {"type": "integer"}},
                "state": {"type": "string", "enum": list(STEP_STATES)},
                "progress": {"type": ["object", "null"]},
                "result": {},
                "error": {"type": ["object", "null"]},
                "retries": {"type": "integer"},
                "dead_letter": {"type": "boolean"},
                "started_at": nullable_text,
                "finished_at": nullable_text,
                "worker": nullable_text,
            },
        },
        "WorkflowSummary": {
            "type": "object",
            "required": ["id", "state", "steps_total", "steps_finished", "links"],
            "properties": {
                "id": {"type": "string"},
                "state": {"type": "string", "enum": list(state.STATES)},
                "submitted_at": nullable_text,
                "finished_at": nullable_text,
                "steps_total": {"type": "integer"},
                "steps_finished": {"type": "integer"},
                "links": {"type": "object"},
            },
        },
        "WorkflowList": {
            "type": "object",
            "required": ["workflows"],
            "properties": {
                "workflows": {"type": "array", "items": openapi.ref("WorkflowSummary")},
            },
        },
        "Workflow": {
            "type": "object",
            "required": ["id", "state", "steps", "links"],
            "properties": {
                "id": {"type": "string"},
                "state": {"type": "string", "enum": list(state.STATES)},
                "submitted_at": nullable_text,
                "finished_at": nullable_text,
                "steps_total": {"type": "integer"},
                "steps_finished": {"type": "integer"},
                "result": {},
                "failed_step": {"type": ["object", "null"]},
                "steps": {"type": "array", "items": openapi.ref("WorkflowStep")},
                "links": {"type": "object"},
            },
        },
    }


def paths(config: Mapping[str, Any]) -> dict[str, openapi.Schema]:
    workflow = openapi.ref("Workflow")
    workflow_id = openapi.path_param("workflow_id", {"type": "string"})
    too_large = {413: f"body too large, or more than {description.MAX_STEPS} task steps"}
    return {
        "/api/workflows": {
            "get": {
                "summary": "The newest workflows submitted, newest first",
                "parameters": [
                    openapi.limit_param(default=RECENT_LIMIT_DEFAULT, maximum=RECENT_LIMIT_MAX)
                ],
                "responses": {
                    "200": openapi.json_response(
                        openapi.ref("WorkflowList"), "each workflow's state and steps finished"
                    ),
                    **openapi.errors(400),
                },
            },
            "post": {
                "summary": "Submit a workflow of registered tasks",
                "parameters": [openapi.idempotency_key_parameter("workflow")],
                "requestBody": openapi.json_body(
                    openapi.ref("WorkflowDescription"), max_bytes=config["MAX_CONTENT_LENGTH"]
                ),
                "responses": {
                    "202": openapi.json_response(workflow, "accepted; its first steps are sent"),
                    "200": openapi.json_response(
                        workflow, "the workflow first submitted with this key"
                    ),
                    **openapi.errors(
                        *openapi.JSON_BODY_ERRORS,
                        404,
                        409,
                        503,
                        reasons={
                            **too_large,
                            400: "invalid description; `field` names the step, such as "
                            "steps[2].kwargs.width",
                            404: "unknown task; `field` names the step",
                            503: durable_accept.ACCEPT_503_REASON,
                        },
                    ),
                },
            },
        },
        "/api/workflows/{workflow_id}": {
            "get": {
                "summary": "A workflow's state, each step's and its result",
                "parameters": [workflow_id],
                "responses": {
                    "200": openapi.json_response(workflow, "the workflow"),
                    **openapi.errors(404),
                },
            },
            "delete": {
                "summary": "Revoke a workflow: every step not finished",
                "parameters": [workflow_id],
                "responses": {
                    "202": openapi.json_response(workflow, "revoked"),
                    **openapi.errors(
                        404, 409, reasons={409: f"already {records.SUCCESS} or {records.FAILURE}"}
                    ),
                },
            },
        },
        "/api/workflows/{workflow_id}/events": {
            "get": {
                "summary": "Server-Sent Events of a workflow and its steps",
                "parameters": [workflow_id],
                "responses": {"200": _EVENT_STREAM, **openapi.errors(404)},
            }
        },
    }
