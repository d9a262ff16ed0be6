"""The workflows API: submit a workflow, read it, follow it live, revoke it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from tasks import records
from tasks.workflows import state
from webapp import durable_accept, sse, sse_slots
from webapp.errors import Conflict, NotFound
from webapp.jsonbody import read_json_object
from webapp.query import limit_arg
from webapp.services import services
from webapp.tasks.request import check_idempotency_key, fingerprint
from webapp.workflows import accept, read_model

bp = Blueprint("workflows_api", __name__, url_prefix="/api")


@bp.post("/workflows")
def create_workflow() -> Response:
    body = read_json_object()
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        check_idempotency_key(key)
    plan = accept.parse(body)
    doc, created = accept.submit(
        services(),
        plan,
        retry_after_s=current_app.config["RETRY_AFTER_S"],
        idempotency_key=key,
        # Only a request with a key is ever compared with another.
        body_fingerprint=fingerprint(body) if key is not None else "",
        replicas=durable_accept.current(),
    )
    response = jsonify(doc)
    response.status_code = 202 if created else 200
    response.headers["Location"] = doc["links"]["self"]
    return response


@bp.get("/workflows")
def list_workflows() -> Response:
    """The newest workflows submitted, newest first (the dashboard's recent list)."""
    limit = limit_arg(default=read_model.RECENT_LIMIT_DEFAULT, maximum=read_model.RECENT_LIMIT_MAX)
    return jsonify({"workflows": read_model.recent(services(), limit)})


@bp.get("/workflows/<workflow_id>")
def get_workflow(workflow_id: str) -> Response:
    return jsonify(_load_or_404(workflow_id))


@bp.get("/workflows/<workflow_id>/events")
def workflow_events(workflow_id: str) -> Response:
    heartbeat_s = current_app.config["SSE_HEARTBEAT_S"]

    def open_stream() -> Response:
        svc = services()
        stored = state.read(svc.redis, workflow_id) if _plausible(workflow_id) else None
        if stored is None:
            raise _not_found(workflow_id)
        steps = stored.plan.steps
        return sse.stream(read_model.event_stream(svc, workflow_id, steps, heartbeat_s))

    return sse_slots.slotted(open_stream)


@bp.delete("/workflows/<workflow_id>")
def revoke_workflow(workflow_id: str) -> Response:
    """End the workflow REVOKED: no step starts after this answers; running ones stop."""
    svc = services()
    stored = state.read(svc.redis, workflow_id) if _plausible(workflow_id) else None
    if stored is None:
        raise _not_found(workflow_id)
    revoked = state.revoke(svc.redis, workflow_id, stored.plan)
    if revoked.outcome is None:
        raise _not_found(workflow_id)
    if revoked.outcome != records.REVOKED:
        raise Conflict(f"workflow {workflow_id} already finished with {revoked.outcome}")
    if revoked.unfinished:
        _stop(list(revoked.unfinished))
    response = jsonify(_load_or_404(workflow_id))
    response.status_code = 202
    return response


def _stop(task_ids: list[str]) -> None:
    """Stop the steps sent and not finished; the durable revoke already keeps them from
    starting (tasks/celery_ext/tracking.py), this ends the running ones now."""
    svc = services()
    docs = records.read_raw(svc.redis, svc.results, task_ids)
    running = [
        task_id
        for task_id, (record, raw_meta) in zip(task_ids, docs, strict=True)
        if records.may_be_running(
            records.document(task_id, record, records.parse_meta(raw_meta))["state"], record
        )
    ]
    waiting = [task_id for task_id in task_ids if task_id not in running]
    if running:
        svc.celery.control.revoke(running, terminate=True, signal="SIGTERM")
    if waiting:
        svc.celery.control.revoke(waiting)
    for task_id in task_ids:
        svc.celery.backend.mark_as_revoked(task_id, "revoked with its workflow")


def _plausible(workflow_id: str) -> bool:
    return len(workflow_id) <= read_model.WORKFLOW_ID_MAX_CHARS


def _not_found(workflow_id: str) -> NotFound:
    return NotFound(f"no workflow {workflow_id[:64]} was submitted (or its record expired)")


def _load_or_404(workflow_id: str) -> dict[str, Any]:
    doc = read_model.load(services(), workflow_id)
    if doc is None:
        raise _not_found(workflow_id)
    return doc
