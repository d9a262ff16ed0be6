"""The tasks API: submit, read, follow, revoke and list tasks; their live feed, stats and
workers; the registry; dead letters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, current_app, jsonify, request

from tasks import deadletters, defaults, records, registry, task_index, task_stats
from tasks.celery_ext import liveness
from webapp import durable_accept, sse, sse_slots
from webapp.errors import BadRequest, Conflict, NotFound
from webapp.jsonbody import read_json_object
from webapp.query import limit_arg
from webapp.services import services
from webapp.tasks import accept, feed, read_model
from webapp.tasks.request import check_idempotency_key, fingerprint, parse_submission

bp = Blueprint("tasks_api", __name__, url_prefix="/api")
# What Werkzeug's route converters leave unquoted in a path segment (WHATWG's
# path-segment set), for task_path.
PATH_SEGMENT_SAFE = "!$&'()*+,/:;=@"


@bp.post("/tasks")
def create_task() -> Response:
    body = read_json_object()
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        check_idempotency_key(key)
    submission = parse_submission(body, max_delay_s=current_app.config["MAX_DELAY_S"])
    doc, created = accept.submit(
        services(),
        submission,
        retry_after_s=current_app.config["RETRY_AFTER_S"],
        idempotency_key=key,
        # Only a request with a key is ever compared with another.
        body_fingerprint=fingerprint(body) if key is not None else "",
        replicas=durable_accept.current(),
    )
    return accepted(doc, 202 if created else 200)


@bp.get("/tasks/<task_id>")
def get_task(task_id: str) -> Response:
    return jsonify(_load_or_404(task_id, with_history=True))


@bp.get("/tasks/<task_id>/events")
def task_events(task_id: str) -> Response:
    heartbeat_s = current_app.config["SSE_HEARTBEAT_S"]

    def open_stream() -> Response:
        _load_or_404(task_id)
        return sse.stream(read_model.event_stream(services(), task_id, heartbeat_s))

    return sse_slots.slotted(open_stream)


@bp.delete("/tasks/<task_id>")
def revoke_task(task_id: str) -> Response:
    doc = _load_or_404(task_id)
    if doc["state"] in (records.SUCCESS, records.FAILURE):
        raise Conflict(f"task {task_id} already finished with {doc['state']}")
    svc = services()
    records.revoke(svc.redis, task_id, name=doc["task"])
    # Live workers drop it at once; the durable mark stops any worker started later.
    [(record, _)] = records.read_raw(svc.redis, svc.results, [task_id])
    running = doc["state"] != records.RETRY and records.may_be_running(doc["state"], record)
    svc.celery.control.revoke(task_id, terminate=running, signal="SIGTERM")
    svc.celery.backend.mark_as_revoked(task_id, "revoked on request")
    response = jsonify(_load_or_404(task_id))
    response.status_code = 202
    return response


@bp.get("/tasks")
def list_tasks() -> Response:
    query = task_index.Query(
        state=_state_arg(),
        name=request.args.get("task") or None,
        prefix=_prefix_arg(),
        cursor=_cursor_arg(),
        limit=_list_limit(),
    )
    return jsonify(read_model.page(services(), query))


@bp.get("/tasks/events")
def all_task_events() -> Response:
    """Every task's state changes (and new tasks), resuming after Last-Event-ID."""
    last_event_id = feed.parse_event_id(
        request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    )
    heartbeat_s = current_app.config["SSE_HEARTBEAT_S"]
    task_feed: feed.TaskFeed = current_app.extensions[feed.EXTENSION_KEY]
    client = services().redis

    def open_stream() -> Response:
        # Subscribed before the response starts: no change falls before the first read.
        events = feed.event_stream(client, task_feed, last_event_id, heartbeat_s)
        first = next(events)
        return sse.stream(_prepend(first, events))

    return sse_slots.slotted(open_stream)


@bp.get("/tasks/stats")
def read_task_stats() -> Response:
    window_s = _window_arg()
    return jsonify(task_stats.read(services().redis, time.time(), window_s))


@bp.get("/workers")
def list_workers() -> Response:
    return jsonify({"workers": liveness.workers(services().redis, time.time())})


@bp.get("/tasks/counts")
def count_tasks() -> Response:
    name = request.args.get("task") or None
    return jsonify(task_index.read_counts(services().redis, name, time.time()))


@bp.get("/registry")
def list_registry() -> Response:
    return jsonify({"tasks": [spec.to_json() for spec in registry.all_specs()]})


@bp.get("/deadletters")
def list_dead_letters() -> Response:
    return jsonify({"dead_letters": deadletters.newest(services().redis, _list_limit())})


@bp.post("/deadletters/<task_id>/replay")
def replay_dead_letter(task_id: str) -> Response:
    svc = services()
    entry = deadletters.get(svc.redis, task_id)
    if entry is None:
        raise NotFound(f"no dead letter {task_id}")
    body = {"task": entry["task"], "kwargs": entry["kwargs"]}
    submission = parse_submission(body, max_delay_s=current_app.config["MAX_DELAY_S"])
    doc, _ = accept.submit(
        svc,
        submission,
        retry_after_s=current_app.config["RETRY_AFTER_S"],
        extra={"replay_of": task_id},
        replicas=durable_accept.current(),
    )
    deadletters.discard(svc.redis, task_id)
    return accepted(doc, 202)


@bp.delete("/deadletters/<task_id>")
def discard_dead_letter(task_id: str) -> Response:
    if not deadletters.discard(services().redis, task_id):
        raise NotFound(f"no dead letter {task_id}")
    return Response(status=204)


def accepted(doc: dict[str, Any], status: int) -> Response:
    """The answer to an accepted task: its document, links and a Location header."""
    location = task_path(doc["id"])
    # The events route is the task's own path plus /events (see task_events), so the
    # busiest answer of the API builds one path, not two.
    body = {**doc, "links": {"self": location, "events": f"{location}/events"}}
    response = jsonify(body)
    response.status_code = status
    response.headers["Location"] = location
    return response


def task_path(task_id: str) -> str:
    """The path of a task's own route (get_task), as ``url_for`` builds it.

    Built here because every POST of a task answers it, and ``url_for`` cost that
    request about 3 % of its instructions (docs/benchmarks.md);
    tests/unit/test_task_path.py holds the two to the same text.
    """
    segment = quote(task_id, safe=PATH_SEGMENT_SAFE)
    return f"{request.script_root}{bp.url_prefix}/tasks/{segment}"


def _load_or_404(task_id: str, *, with_history: bool = False) -> dict[str, Any]:
    doc = read_model.load(services(), task_id, with_history=with_history)
    if doc is None:
        raise NotFound(f"no task {task_id[:64]} was submitted (or its record expired)")
    return doc


def _prepend(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _window_arg() -> int:
    """The `window` query parameter: whole seconds, one bucket to the longest window."""
    raw = request.args.get("window")
    low, high = defaults.TASK_STATS_BUCKET_S, defaults.TASK_STATS_WINDOW_MAX_S
    if raw is None:
        return high
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise BadRequest(f"'window' must be whole seconds from {low} to {high}", field="window")
    return int(raw)


def _state_arg() -> str | None:
    state = request.args.get("state") or None
    if state is not None and state not in records.STATES:
        raise BadRequest(f"'state' must be one of {', '.join(records.STATES)}", field="state")
    return state


def _prefix_arg() -> str | None:
    prefix = request.args.get("q") or None
    if prefix is not None and len(prefix) > read_model.TASK_ID_MAX_CHARS:
        raise BadRequest(
            f"'q' is a task id prefix of at most {read_model.TASK_ID_MAX_CHARS} characters",
            field="q",
        )
    return prefix


def _cursor_arg() -> task_index.Cursor | None:
    raw = request.args.get("cursor") or None
    if raw is None:
        return None
    cursor = task_index.Cursor.decode(raw)
    if cursor is None:
        raise BadRequest("'cursor' must be a next_cursor from an earlier page", field="cursor")
    return cursor


def _list_limit() -> int:
    config = current_app.config
    return limit_arg(default=int(config["TASK_LIST_DEFAULT"]), maximum=config["TASK_LIST_MAX"])
