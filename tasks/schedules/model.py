"""A schedule: which registered task runs when, validated when it is written, and its stored form.

A schedule names a task of the registry with its arguments (bound and checked as
``POST /api/tasks`` checks them, with the same errors: ``InvalidArgument`` names the
field, ``UnknownTask`` lists the known tasks), and its timing: a 5-field cron
expression in an IANA time zone, or a fixed interval in seconds. Nothing is stored
unless all of it is valid.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tasks import registry
from tasks.errors import InvalidArgument, TaskrelayError
from tasks.registry import TaskSpec
from tasks.schedules.slots import Cron, Interval, InvalidCron, Timing, Window, check_cron

FIELDS = (
    "name",
    "task",
    "args",
    "kwargs",
    "cron",
    "timezone",
    "every_s",
    "enabled",
    "start_at",
    "end_at",
    "misfire",
)
# A name: a letter or digit, then letters, digits, and . _ : - (handy on a command line).
NAME_MAX_CHARS = 100
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]*"
_NAME = re.compile(NAME_PATTERN)
DEFAULT_TIMEZONE = "UTC"
# The range of a start or an end: slots are looked for decades ahead of them, and a
# datetime ends in the year 9999.
INSTANT_MIN = datetime(2000, 1, 1, tzinfo=UTC)
INSTANT_MAX = datetime(2200, 1, 1, tzinfo=UTC)
# An interval is whole seconds, from one second to a leap year.
EVERY_S_MIN = 1
EVERY_S_MAX = 366 * 86_400
# What happens to the slots that fell while no scheduler ran (more than the
# scheduler's grace ago): one run for all of them, or none.
RUN_ONCE = "run_once"
SKIP = "skip"
MISFIRE_POLICIES = (RUN_ONCE, SKIP)
DEFAULT_MISFIRE = RUN_ONCE


class UnknownTask(TaskrelayError):
    """A schedule names a task the registry does not know; the message lists the known ones."""

    def __init__(self, name: str) -> None:
        known = ", ".join(spec.name for spec in registry.all_specs())
        self.field = "task"
        self.message = f"unknown task '{name[:100]}'; known tasks: {known}"
        super().__init__(self.message)


@dataclass(frozen=True)
class Schedule:
    """One schedule as stored; times are aware datetimes in UTC."""

    id: str
    name: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    cron: str | None
    timezone: str
    every_s: int | None
    enabled: bool
    start_at: datetime | None
    end_at: datetime | None
    misfire: str
    created_at: datetime
    updated_at: datetime

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def window(self) -> Window:
        """Its slots: the timing, from its start (if any) to its end (if any)."""
        timing: Timing
        if self.cron is not None:
            timing = Cron(self.cron, self.zone)
        else:
            assert self.every_s is not None
            # An interval counts from its start, else from the whole second it was made.
            anchor = self.start_at or self.created_at.replace(microsecond=0)
            timing = Interval(self.every_s, anchor)
        return Window(timing, self.start_at, self.end_at)

    def spec(self) -> TaskSpec:
        found = registry.lookup(self.task)
        if found is None:
            raise UnknownTask(self.task)
        return found

    def call(self) -> dict[str, Any]:
        """Its arguments as keyword arguments, checked against the task as it is declared now."""
        return self.spec().bind(self.args, self.kwargs)

    def to_hash(self) -> dict[str, str]:
        """The stored form: a flat hash of strings."""
        return {name: json.dumps(value, default=_iso) for name, value in asdict(self).items()}

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> Schedule:
        values = {name: json.loads(raw[name]) for name in _STORED}
        for name in ("start_at", "end_at", "created_at", "updated_at"):
            if values[name] is not None:
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)


_STORED = tuple(Schedule.__dataclass_fields__)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def new_schedule(body: Mapping[str, Any], *, now: datetime) -> Schedule:
    """A schedule from a creation body, or InvalidArgument / UnknownTask naming the field."""
    _refuse_unknown_fields(body)
    for field in ("name", "task"):
        if field not in body:
            raise InvalidArgument(field, f"'{field}' is required")
    if body.get("cron") is None and body.get("every_s") is None:
        raise InvalidArgument("cron", "give 'cron' (with 'timezone') or 'every_s'")
    blank = Schedule(
        id=str(uuid.uuid4()),
        name="",
        task="",
        args=[],
        kwargs={},
        cron=None,
        timezone=DEFAULT_TIMEZONE,
        every_s=None,
        enabled=True,
        start_at=None,
        end_at=None,
        misfire=DEFAULT_MISFIRE,
        created_at=now,
        updated_at=now,
    )
    return _apply(blank, body, now=now)


def patched(schedule: Schedule, body: Mapping[str, Any], *, now: datetime) -> Schedule:
    """The schedule with the fields of a PATCH body, validated as a whole."""
    _refuse_unknown_fields(body)
    return _apply(schedule, body, now=now)


def timing_changed(old: Schedule, new: Schedule) -> bool:
    """Whether the slots may differ: the scheduler must not catch up on the new ones' past."""
    fields = ("cron", "timezone", "every_s", "start_at", "end_at")
    return any(getattr(old, name) != getattr(new, name) for name in fields)


def _refuse_unknown_fields(body: Mapping[str, Any]) -> None:
    extra = sorted(set(body) - set(FIELDS))
    if extra:
        raise InvalidArgument(extra[0], f"unknown field '{extra[0]}'; allowed: {', '.join(FIELDS)}")


def _apply(schedule: Schedule, body: Mapping[str, Any], *, now: datetime) -> Schedule:
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = _name(body["name"])
    if "task" in body:
        changes["task"] = _task_name(body["task"])
    if "args" in body:
        changes["args"] = _typed(body["args"], list, "args", "an array")
    if "kwargs" in body:
        changes["kwargs"] = _typed(body["kwargs"], dict, "kwargs", "an object")
    changes.update(_timing(body))
    if "timezone" in body:
        changes["timezone"] = _timezone(body["timezone"])
    if "enabled" in body:
        changes["enabled"] = _typed(body["enabled"], bool, "enabled", "true or false")
    for field in ("start_at", "end_at"):
        if field in body:
            changes[field] = _instant(body[field], field)
    if "misfire" in body:
        changes["misfire"] = _misfire(body["misfire"])
    result = replace(schedule, **changes, updated_at=now)
    result.call()  # the task exists and takes these arguments
    if result.start_at and result.end_at and result.end_at <= result.start_at:
        raise InvalidArgument("end_at", "'end_at' must be after 'start_at'")
    return result


def _timing(body: Mapping[str, Any]) -> dict[str, Any]:
    """cron and every_s: one or the other; giving one clears the other."""
    cron, every_s = body.get("cron"), body.get("every_s")
    if cron is not None and every_s is not None:
        raise InvalidArgument("every_s", "give either 'cron' or 'every_s', not both")
    if cron is not None:
        if not isinstance(cron, str):
            raise InvalidArgument("cron", "'cron' must be a string of 5 fields")
        try:
            return {"cron": check_cron(cron), "every_s": None}
        except InvalidCron as error:
            raise InvalidArgument(
                "cron", f"'cron' is not a valid cron expression: {error}"
            ) from None
    if every_s is not None:
        if isinstance(every_s, bool) or not isinstance(every_s, int):
            raise InvalidArgument("every_s", "'every_s' must be a whole number of seconds")
        if not EVERY_S_MIN <= every_s <= EVERY_S_MAX:
            raise InvalidArgument(
                "every_s", f"'every_s' must be between {EVERY_S_MIN} and {EVERY_S_MAX} seconds"
            )
        return {"every_s": every_s, "cron": None}
    if "cron" in body or "every_s" in body:
        raise InvalidArgument("cron", "a schedule needs 'cron' or 'every_s'")
    return {}


def _name(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= NAME_MAX_CHARS
        or _NAME.fullmatch(value) is None
    ):
        raise InvalidArgument(
            "name",
            f"'name' must be 1 to {NAME_MAX_CHARS} letters, digits or . _ : -, "
            "starting with a letter or digit",
        )
    if _looks_like_id(value):
        raise InvalidArgument("name", "'name' must not look like a schedule id (a UUID)")
    return value


def _looks_like_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _task_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument("task", "'task' is required and must be a task name")
    if registry.lookup(value) is None:
        raise UnknownTask(value)
    return value


def _typed(value: Any, expected: type, field: str, wording: str) -> Any:
    if not isinstance(value, expected):
        raise InvalidArgument(field, f"'{field}' must be {wording}")
    return value


@functools.cache
def _zones() -> frozenset[str]:
    # Only names of the IANA database: a path or a file name is never opened.
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: Any) -> str:
    if not isinstance(value, str) or value not in _zones():
        shown = value[:64] if isinstance(value, str) else value
        raise InvalidArgument(
            "timezone", f"unknown time zone {shown!r}; use an IANA name such as Europe/Berlin"
        )
    return value


def _instant(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(field, f"'{field}' must be an ISO 8601 date-time string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(
            field, f"'{field}' must be an ISO 8601 date-time, such as 2030-01-01T12:00:00+00:00"
        ) from None
    if when.tzinfo is None:
        raise InvalidArgument(field, f"'{field}' must include a time zone, such as +00:00 or Z")
    if not INSTANT_MIN <= when <= INSTANT_MAX:
        raise InvalidArgument(
            field,
            f"'{field}' must be between {INSTANT_MIN.isoformat()} and {INSTANT_MAX.isoformat()}",
        )
    return when.astimezone(UTC)


def _misfire(value: Any) -> str:
    if value not in MISFIRE_POLICIES:
        raise InvalidArgument("misfire", f"'misfire' must be one of {', '.join(MISFIRE_POLICIES)}")
    return str(value)
