"""Validation of a task submission body (POST /api/tasks), as plain functions."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks import registry
from tasks.errors import InvalidArgument
from tasks.registry import TaskSpec
from webapp.errors import BadRequest, NotFound

FIELDS = ("task", "args", "kwargs", "countdown", "eta", "priority")
# Redis honours priorities 0 (most urgent) to 9.
PRIORITY_RANGE = range(10)
IDEMPOTENCY_KEY_MAX_CHARS = 255
# What an Idempotency-Key may hold: printable ASCII, space (0x20) to tilde (0x7E).
IDEMPOTENCY_KEY_PATTERN = "[ -~]+"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


@dataclass(frozen=True)
class Submission:
    spec: TaskSpec
    args: list[Any]
    kwargs: dict[str, Any]
    call: dict[str, Any]  # validated, as keyword arguments
    eta: datetime | None
    priority: int | None


def parse_submission(body: dict[str, Any], *, max_delay_s: float) -> Submission:
    extra = sorted(set(body) - set(FIELDS))
    if extra:
        raise BadRequest(
            f"unknown field '{extra[0]}'; allowed: {', '.join(FIELDS)}", field=extra[0]
        )
    spec = _task_spec(body.get("task"))
    args = body.get("args", [])
    kwargs = body.get("kwargs", {})
    if not isinstance(args, list):
        raise BadRequest("'args' must be an array", field="args")
    if not isinstance(kwargs, dict):
        raise BadRequest("'kwargs' must be an object", field="kwargs")
    try:
        call = spec.bind(args, kwargs)
    except InvalidArgument as error:
        raise BadRequest(error.message, field=error.field) from None
    return Submission(
        spec=spec,
        args=args,
        kwargs=kwargs,
        call=call,
        eta=_eta(body, max_delay_s),
        priority=_priority(body.get("priority")),
    )


def fingerprint(body: dict[str, Any]) -> str:
    """A digest of a body that is the same for the same JSON, whatever its key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_idempotency_key(key: str) -> str:
    """The Idempotency-Key header's value, or 400 when it is not 1 to 255 printable ASCII.

    The IETF draft (draft-ietf-httpapi-idempotency-key-header) makes the value a
    structured-field string, which is printable ASCII; it is taken verbatim, so a
    client that sends the draft's quotes sends them every time. Letters beyond
    ASCII reach a server only as undeclared bytes (read as Latin-1), so they are
    refused rather than guessed at.
    """
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_CHARS or _IDEMPOTENCY_KEY.fullmatch(key) is None:
        raise BadRequest(
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_CHARS} printable ASCII "
            "characters, from space to ~",
            field="Idempotency-Key",
        )
    return key


def _task_spec(name: Any) -> TaskSpec:
    if not isinstance(name, str) or not name:
        raise BadRequest("'task' is required and must be a task name", field="task")
    spec = registry.lookup(name)
    if spec is None:
        known = ", ".join(s.name for s in registry.all_specs())
        raise NotFound(f"unknown task '{name[:100]}'; known tasks: {known}", field="task")
    return spec


def _eta(body: dict[str, Any], max_delay_s: float) -> datetime | None:
    countdown, eta = body.get("countdown"), body.get("eta")
    if countdown is not None and eta is not None:
        raise BadRequest("give either 'countdown' or 'eta', not both", field="countdown")
    now = datetime.now(UTC)
    if countdown is not None:
        if isinstance(countdown, bool) or not isinstance(countdown, int | float):
            raise BadRequest("'countdown' must be a number of seconds", field="countdown")
        if not 0 <= countdown <= max_delay_s:
            raise BadRequest(
                f"'countdown' must be between 0 and {max_delay_s:g} seconds", field="countdown"
            )
        return now + timedelta(seconds=countdown)
    if eta is None:
        return None
    if not isinstance(eta, str):
        raise BadRequest("'eta' must be an ISO 8601 date-time string", field="eta")
    try:
        when = datetime.fromisoformat(eta)
    except ValueError:
        raise BadRequest(
            "'eta' must be an ISO 8601 date-time, such as 2030-01-01T12:00:00+00:00",
            field="eta",
        ) from None
    if when.tzinfo is None:
        raise BadRequest("'eta' must include a time zone, such as +00:00 or Z", field="eta")
    if (when - now).total_seconds() > max_delay_s:
        raise BadRequest(f"'eta' must be at most {max_delay_s:g} seconds ahead", field="eta")
    return when


def _priority(priority: Any) -> int | None:
    if priority is None:
        return None
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or priority not in PRIORITY_RANGE
    ):
        raise BadRequest(
            f"'priority' must be an integer from {min(PRIORITY_RANGE)} (most urgent) "
            f"to {max(PRIORITY_RANGE)}",
            field="priority",
        )
    return priority
