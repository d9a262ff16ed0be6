"""Reading workflows for the API: one document, and a live stream of its changes.

A workflow's document joins its record (``tasks.workflows.state``) with the task
document of each step sent (``tasks.records``), so a step reads exactly as
``GET /api/tasks/<task id>`` shows it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from tasks import keys, records
from tasks.connections import UNREACHABLE
from tasks.workflows import state
from tasks.workflows.plan import Step, leaves, materialize
from webapp import sse
from webapp.services import Services

# A workflow id is a UUID; anything much longer was never submitted.
WORKFLOW_ID_MAX_CHARS = 64
API_PREFIX = "/api"
# GET /api/workflows reads each listed workflow whole (its steps' task records too),
# so a page is kept short.
RECENT_LIMIT_DEFAULT = 20
RECENT_LIMIT_MAX = 50
# The fields of a workflow's document that its entry in the recent list shows.
_SUMMARY_FIELDS = ("id", "state", "submitted_at", "finished_at", "steps_total", "steps_finished")
# A step not sent yet: it waits on others. Once the workflow has ended without it,
# SKIPPED (or REVOKED, when the workflow was revoked).
WAITING = "WAITING"
SKIPPED = "SKIPPED"
STEP_STATES = (WAITING, *records.STATES, SKIPPED)
# The fields of a step's task document that its step document shows.
_TASK_FIELDS = (
    "state",
    "progress",
    "result",
    "error",
    "retries",
    "dead_letter",
    "started_at",
    "finished_at",
    "worker",
)
# After a wake-up an event stream keeps reading for this long (or this many
# messages), so a burst of step changes costs one read of the workflow.
COALESCE_S = 0.05
COALESCE_MAX_MESSAGES = 1000


def workflow_path(workflow_id: str) -> str:
    return f"{API_PREFIX}/workflows/{workflow_id}"


def load(services: Services, workflow_id: str) -> dict[str, Any] | None:
    if len(workflow_id) > WORKFLOW_ID_MAX_CHARS:
        return None
    stored = state.read(services.redis, workflow_id)
    if stored is None:
        return None
    plan = stored.plan
    sent = [step for step in plan.steps if step.id in stored.dispatched]
    task_docs = {
        step.task_id: records.document(step.task_id, record, records.parse_meta(raw_meta))
        for step, (record, raw_meta) in zip(
            sent,
            records.read_raw(services.redis, services.results, [s.task_id for s in sent]),
            strict=True,
        )
    }
    result = None
    if stored.outcome == records.SUCCESS:
        needed = leaves(plan.output)
        encoded = state.read_results(services.redis, workflow_id, needed)
        result = materialize(
            plan.output,
            {step_id: json.loads(raw) for step_id, raw in zip(needed, encoded, strict=True) if raw},
        )
    return document(workflow_id, stored, task_docs, result)


def recent(services: Services, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` workflows submitted, newest first, each summed up; one whose
    record expired is left out (the index forgets it when trimmed)."""
    summaries = []
    for workflow_id in state.recent(services.redis, limit):
        doc = load(services, workflow_id)
        if doc is not None:
            summaries.append(
                {**{name: doc[name] for name in _SUMMARY_FIELDS}, "links": doc["links"]}
            )
    return summaries


def document(
    workflow_id: str,
    stored: state.Stored,
    task_docs: Mapping[str, dict[str, Any]],
    result: Any = None,
) -> dict[str, Any]:
    """The public view of a workflow (GET /api/workflows/<id>)."""
    steps = [_step(step, stored, task_docs.get(step.task_id)) for step in stored.plan.steps]
    started = stored.finished_steps > 0 or any(
        step["state"] not in (WAITING, records.QUEUED) for step in steps
    )
    workflow_state = stored.outcome or (state.RUNNING if started else records.QUEUED)
    path = workflow_path(workflow_id)
    return {
        "id": workflow_id,
        "state": workflow_state,
        "submitted_at": stored.submitted_at,
        "finished_at": stored.finished_at,
        "steps_total": len(steps),
        "steps_finished": stored.finished_steps,
        "result": result if workflow_state == records.SUCCESS else None,
        "failed_step": _failed_step(stored, steps),
        "steps": steps,
        "links": {"self": path, "events": f"{path}/events"},
    }


def _step(step: Step, stored: state.Stored, task_doc: dict[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "index": step.index,
        "path": step.path,
        "task": step.task,
        "task_id": step.task_id,
        "depends_on": [int(dep) for dep in step.deps],
        **dict.fromkeys(_TASK_FIELDS),
        "retries": 0,
        "dead_letter": False,
    }
    if step.id == stored.failed_step and stored.failure is not None:
        # It was never sent: what it would have received did not fit its task.
        doc.update(state=records.FAILURE, error={**stored.failure, "traceback": None})
    elif step.id in stored.dispatched:
        source = task_doc or records.document(step.task_id, {}, None)
        doc.update({name: source[name] for name in _TASK_FIELDS})
    elif stored.outcome is None:
        doc["state"] = WAITING
    else:
        doc["state"] = records.REVOKED if stored.outcome == records.REVOKED else SKIPPED
    return doc


def _failed_step(stored: state.Stored, steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    if stored.outcome != records.FAILURE or stored.failed_step is None:
        return None
    step = steps[int(stored.failed_step)]
    links: dict[str, str] = {}
    if stored.failed_step in stored.dispatched and stored.failure is None:
        links["task"] = f"{API_PREFIX}/tasks/{step['task_id']}"
        if step["dead_letter"]:
            links["dead_letter_replay"] = f"{API_PREFIX}/deadletters/{step['task_id']}/replay"
    return {
        **{name: step[name] for name in ("index", "path", "task", "task_id", "error")},
        "dead_letter": step["dead_letter"],
        "links": links,
    }


def event_stream(
    services: Services, workflow_id: str, steps: tuple[Step, ...], heartbeat_s: float
) -> Iterator[str]:
    """``workflow`` events (the whole document: first, on every change of the workflow's
    state, and last) and ``step`` events (a step's document, whenever it changes).

    It subscribes before its first read, to the workflow's channel and to every step's
    result channel, so no change falls between; every wake-up reads the workflow again.
    """
    pubsub = services.results.pubsub()  # type: ignore[no-untyped-call, unused-ignore]
    try:
        pubsub.subscribe(
            keys.workflow_events(workflow_id), *[keys.celery_result(s.task_id) for s in steps]
        )
        last: dict[str, Any] | None = None
        while True:
            doc = load(services, workflow_id)
            if doc is None:
                return
            yield from _changes(last, doc)
            last = doc
            if doc["state"] in state.OUTCOMES:
                return
            if _woken(pubsub, heartbeat_s):
                _drain(pubsub)
            else:
                yield sse.KEEPALIVE
    except UNREACHABLE:
        yield sse.retry_hint()
    finally:
        pubsub.close()


def _changes(last: dict[str, Any] | None, doc: dict[str, Any]) -> Iterator[str]:
    if last is None:
        yield sse.event("workflow", doc)
        return
    for before, now in zip(last["steps"], doc["steps"], strict=True):
        if before != now:
            yield sse.event("step", now)
    if doc["state"] != last["state"]:
        yield sse.event("workflow", doc)


def _woken(pubsub: Any, timeout_s: float) -> bool:
    """Whether a message came within the timeout; confirmations of the (many)
    subscriptions are not messages, so they wake nobody."""
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=remaining)
        if message is not None and message["type"] == "message":
            return True
    return False


def _drain(pubsub: Any) -> None:
    deadline = time.monotonic() + COALESCE_S
    for _ in range(COALESCE_MAX_MESSAGES):
        if not _woken(pubsub, deadline - time.monotonic()):
            return
