"""The schedules API: create, list, read, change (pause, resume), delete, run now, and runs.

A schedule is addressed by its id or by its name. Bodies are validated against the
task registry before anything is stored, and answer like ``POST /api/tasks``: 400
naming the field, 404 for an unknown task (listing the known ones).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, url_for

from tasks.errors import InvalidArgument
from tasks.schedules import fire, store
from tasks.schedules.model import NAME_MAX_CHARS, Schedule, UnknownTask, new_schedule, patched
from tasks.schedules.store import NameTaken, ScheduleGone
from webapp.errors import BadRequest, Conflict, NotFound
from webapp.jsonbody import read_json_object
from webapp.query import limit_arg
from webapp.schedules import read_model
from webapp.services import services

bp = Blueprint("schedules_api", __name__, url_prefix="/api")

# GET /api/schedules lists at most this many, newest first, and this many by default.
SCHEDULE_LIST_MAX = 1000
SCHEDULE_LIST_DEFAULT = 100
# GET /api/schedules/<id>/runs: at most every run kept, and this many by default.
RUN_LIST_MAX = store.RUNS_KEPT
RUN_LIST_DEFAULT = 50
# A reference longer than any id (a UUID) or name was never a schedule.
REF_MAX_CHARS = max(NAME_MAX_CHARS, 36)

T = TypeVar("T")


@bp.post("/schedules")
def create_schedule() -> Response:
    body = read_json_object()
    schedule = _validated(lambda: new_schedule(body, now=datetime.now(UTC)))
    svc = services()
    _stored(lambda: store.create(svc.redis, schedule))
    response = jsonify(read_model.document(svc, schedule))
    response.status_code = 201
    response.headers["Location"] = url_for("schedules_api.get_schedule", ref=schedule.id)
    return response


@bp.get("/schedules")
def list_schedules() -> Response:
    svc = services()
    limit = limit_arg(default=SCHEDULE_LIST_DEFAULT, maximum=SCHEDULE_LIST_MAX)
    return jsonify({"schedules": read_model.documents(svc, store.newest(svc.redis, limit))})


@bp.get("/schedules/<ref>")
def get_schedule(ref: str) -> Response:
    return jsonify(read_model.document(services(), _load_or_404(ref)))


@bp.patch("/schedules/<ref>")
def update_schedule(ref: str) -> Response:
    body = read_json_object()
    old = _load_or_404(ref)
    new = _validated(lambda: patched(old, body, now=datetime.now(UTC)))
    svc = services()
    _stored(lambda: store.update(svc.redis, old, new))
    return jsonify(read_model.document(svc, new))


@bp.delete("/schedules/<ref>")
def delete_schedule(ref: str) -> Response:
    if not store.delete(services().redis, _load_or_404(ref).id):
        raise NotFound(f"no schedule {ref}")
    return Response(status=204)


@bp.post("/schedules/<ref>/run")
def run_schedule(ref: str) -> Response:
    """Fire the schedule's task now, whether it is paused or not; its slots are untouched."""
    schedule = _load_or_404(ref)
    svc = services()
    publisher = fire.Publisher(svc.redis, svc.celery, svc.submit_atomically)
    run = _validated(lambda: fire.fire_now(publisher, schedule, now=datetime.now(UTC)))
    [shown] = read_model.runs_with_states(svc, [run.as_json()])
    response = jsonify(shown)
    response.status_code = 202
    response.headers["Location"] = shown["links"]["task"]
    return response


@bp.get("/schedules/<ref>/runs")
def list_runs(ref: str) -> Response:
    schedule = _load_or_404(ref)
    svc = services()
    runs = store.runs(
        svc.redis, schedule.id, limit_arg(default=RUN_LIST_DEFAULT, maximum=RUN_LIST_MAX)
    )
    return jsonify({"runs": read_model.runs_with_states(svc, runs)})


def _load_or_404(ref: str) -> Schedule:
    found = store.resolve(services().redis, ref) if len(ref) <= REF_MAX_CHARS else None
    if found is None:
        raise NotFound(f"no schedule with the id or name {ref[:REF_MAX_CHARS]}")
    return found


def _validated(make: Callable[[], T]) -> T:
    """What `make` returns, with the domain's refusals as the API's errors."""
    try:
        return make()
    except UnknownTask as error:
        raise NotFound(error.message, field=error.field) from None
    except InvalidArgument as error:
        raise BadRequest(error.message, field=error.field) from None


def _stored(write: Callable[[], Any]) -> None:
    try:
        write()
    except NameTaken as error:
        raise Conflict(error.message, field=error.field) from None
    except ScheduleGone:
        raise NotFound("the schedule was deleted meanwhile") from None
