"""A task's start check, made by the fetch that took its message off its queue.

Before a worker runs a task it must know whether the task was revoked (the durable
revoke set) and how often this attempt was delivered already (a task that killed its
worker each time is poison). fetch.lua answers both for every task due now that has
a record or is one of taskrelay's own (sent with Celery's API, it has no record until
the check starts one), in the round trip that takes the message, so the worker need
not ask again when the task starts (tasks/celery_ext/tracking.py). The answer travels to the pool
child in a message header that only this worker's copy of the message carries.

A message a live worker hands back unstarted (a warm shutdown, a lost connection)
was no delivery that killed a worker: its count is taken back (``handed_back``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks import keys
from tasks.celery_ext.result_backend import Command

# The header the transport adds to a fetched task's message; Celery hands every
# header to the task as an attribute of its request.
HEADER = "taskrelay_start_check"


@dataclass(frozen=True)
class StartCheck:
    # How many times this attempt has been delivered, this delivery included.
    deliveries: int
    revoked: bool


def parse(raw: Any, task_id: str, attempt: int) -> StartCheck | None:
    """fetch.lua's "deliveries:revoked:attempt:task id", if it checked this task's attempt.

    Celery copies a request's headers into the message of its retry: a check found
    there was made for an earlier attempt, and says nothing about this one.
    """
    if not isinstance(raw, str):
        return None
    fields = raw.split(":", 3)
    if len(fields) != 4 or fields[3] != task_id or fields[2] != str(attempt):
        return None
    try:
        return StartCheck(deliveries=int(fields[0]), revoked=fields[1] == "1")
    except ValueError:
        return None


def of_request(request: Any) -> StartCheck | None:
    """The check of the request's own delivery, or None (then it is made at start)."""
    raw = getattr(request, HEADER, None)
    if raw is None:
        return None
    headers = getattr(request, "headers", None)
    if isinstance(headers, dict):
        headers.pop(HEADER, None)  # not handed on to the retry's message
    return parse(raw, str(request.id), int(request.retries or 0))


def of_fields(fields: Any) -> StartCheck | None:
    """The check carried by a worker's request (its message's headers and body fields)."""
    if not isinstance(fields, dict):
        return None
    try:
        attempt = int(fields.get("retries") or 0)
    except (TypeError, ValueError):
        return None
    return parse(fields.get(HEADER), str(fields.get("id")), attempt)


def add_to_payload(payload: Any, raw: str) -> None:
    """Carry the check in the message's headers (the payload the transport delivers).

    A message the fetch did not check loses any such header it was sent with: only
    the fetch says what it checked.
    """
    headers = payload.get("headers") if isinstance(payload, dict) else None
    if not isinstance(headers, dict):
        return
    if raw:
        headers[HEADER] = raw
    else:
        headers.pop(HEADER, None)


def handed_back(messages: Any) -> list[Command]:
    """Take back the deliveries counted for messages that go back to their queue unrun."""
    commands: list[Command] = []
    for message in messages:
        headers = getattr(message, "headers", None) or {}
        task_id = headers.get("id")
        attempt = headers.get("retries") or 0
        if not isinstance(task_id, str) or not isinstance(attempt, int):
            continue
        if parse(headers.get(HEADER), task_id, attempt) is None:
            continue
        commands.append(
            ["HINCRBY", keys.task_record(task_id), keys.deliveries_field(attempt), "-1"]
        )
    return commands
