"""Operations endpoints: liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from tasks import role_restarts
from tasks.celery_ext.liveness import BEACON_TTL_S, live_consumers
from tasks.connections import UNREACHABLE
from tasks.queues import QUEUES
from webapp import memory_guard
from webapp.ops import openapi
from webapp.services import services

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    checks: dict[str, Any] = {}
    # Restarts by role, from the supervisor of `taskrelay up`: shown, never a reason
    # to be unready (a restarted role is checked like any other).
    restarts: dict[str, int] = {}
    try:
        services().redis.ping()
        checks["redis"] = {"ok": True}
        for queue in QUEUES:
            workers = live_consumers(services().redis, queue)
            checks[f"queue:{queue}"] = {
                "ok": bool(workers),
                "workers": workers,
                "within_s": BEACON_TTL_S,
            }
        restarts = role_restarts.read(services().redis)
        # Not ready once submits are refused for memory, before Redis refuses writes.
        checks["redis_memory"] = memory_guard.memory_status(current_app)
    except UNREACHABLE as error:
        checks["redis"] = {"ok": False, "error": str(error)}
    ready = all(check["ok"] for check in checks.values())
    response = jsonify({"ready": ready, "checks": checks, "supervisor": {"restarts": restarts}})
    response.status_code = 200 if ready else 503
    return response


@bp.get("/api/openapi.json")
def openapi_document() -> Response:
    return jsonify(openapi.document(current_app.config))
