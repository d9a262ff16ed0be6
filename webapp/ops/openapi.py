"""The operations part of the OpenAPI document, and the whole document assembled.

Each area describes its own paths; ``document`` joins them with the shared pieces
of ``webapp.openapi``, from the settings the app runs with, so the limits it states
are the ones the API applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from webapp import auth, openapi
from webapp.channels import openapi as channels_openapi
from webapp.openapi import Schema, json_response
from webapp.schedules import openapi as schedules_openapi
from webapp.tasks import openapi as tasks_openapi
from webapp.workflows import openapi as workflows_openapi

OPENAPI_VERSION = "3.1.0"
# The distribution whose version the document states.
DISTRIBUTION = "taskrelay"


def document(config: Mapping[str, Any]) -> Schema:
    """The OpenAPI document of the HTTP API that an app with `config` serves."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": DISTRIBUTION, "version": metadata.version(DISTRIBUTION)},
        "components": {
            "schemas": {
                **openapi.schemas(),
                **tasks_openapi.schemas(config),
                **channels_openapi.schemas(),
                **schedules_openapi.schemas(),
                **workflows_openapi.schemas(),
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": openapi.add_guard_errors(
            {
                **tasks_openapi.paths(config),
                **channels_openapi.paths(config),
                **schedules_openapi.paths(config),
                **workflows_openapi.paths(config),
                **paths(),
            },
            reads_closed=auth.tokens_from(config).reads_closed,
        ),
    }


def paths() -> dict[str, Schema]:
    anything = {"type": "object"}
    return {
        "/api/stats": {
            "get": {
                "summary": "Queue depths and tasks per minute, for the dashboard",
                "responses": {"200": json_response(anything, "current figures")},
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": json_response(anything, "the OpenAPI document")},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness of this web process",
                "responses": {"200": json_response(anything, "alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: Redis reachable, a live worker on each queue",
                "responses": {
                    "200": json_response(anything, "ready, with each check"),
                    "503": json_response(anything, "not ready, with the failing checks"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
