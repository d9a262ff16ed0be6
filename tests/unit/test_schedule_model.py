"""Schedule bodies are validated against the registry field by field, with the field named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import tasks.jobs  # noqa: F401  (declares the tasks)
from tasks.errors import InvalidArgument
from tasks.schedules.model import (
    RUN_ONCE,
    Schedule,
    UnknownTask,
    new_schedule,
    patched,
    timing_changed,
)

NOW = datetime(2030, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)
VALID: dict[str, Any] = {"name": "nightly", "task": "consume", "args": [5], "cron": "0 3 * * *"}


def test_a_valid_body_makes_an_enabled_schedule_with_the_defaults() -> None:
    schedule = new_schedule({**VALID, "timezone": "Europe/Berlin"}, now=NOW)
    assert schedule.enabled and schedule.misfire == RUN_ONCE
    assert schedule.call() == {"number": 5}
    assert schedule.window().after(NOW) == datetime(2030, 1, 2, 2, 0, tzinfo=UTC)


def test_an_interval_counts_from_the_whole_second_it_was_made() -> None:
    schedule = new_schedule({"name": "tick", "task": "noop", "every_s": 2}, now=NOW)
    assert schedule.window().after(NOW) == NOW.replace(microsecond=0) + timedelta(seconds=2)


def test_the_stored_form_reads_back_the_same_schedule() -> None:
    body = {**VALID, "start_at": "2030-02-01T00:00:00+01:00", "misfire": "skip"}
    schedule = new_schedule(body, now=NOW)
    assert Schedule.from_hash(schedule.to_hash()) == schedule
    assert schedule.start_at == datetime(2030, 1, 31, 23, 0, tzinfo=UTC)


def test_an_unknown_task_names_the_field_and_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTask, match=r"known tasks: .*consume") as caught:
        new_schedule({**VALID, "task": "nope"}, now=NOW)
    assert caught.value.field == "task"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"cron": 5}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"args": ["five"]}, "number"),
        ({"args": [10**13]}, "number"),
        ({"args": []}, "number"),
        ({"kwargs": {"nope": 1}}, "nope"),
        ({"args": "5"}, "args"),
        ({"every_s": 10}, "every_s"),
        ({"misfire": "twice"}, "misfire"),
        ({"enabled": "yes"}, "enabled"),
        ({"start_at": "tomorrow"}, "start_at"),
        ({"start_at": "2030-01-01T00:00:00"}, "start_at"),
        ({"start_at": "2030-02-01T00:00:00Z", "end_at": "2030-01-01T00:00:00Z"}, "end_at"),
        ({"name": "has space"}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_each_invalid_field_is_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        new_schedule({**VALID, **change}, now=NOW)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": "consume", "cron": "* * * * *"}, "name"),
        ({"name": "n", "cron": "* * * * *"}, "task"),
        ({"name": "n", "task": "noop"}, "cron"),
    ],
)
def test_a_schedule_needs_a_name_a_task_and_a_timing(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        new_schedule(body, now=NOW)
    assert caught.value.field == field


def test_a_patch_that_gives_an_interval_clears_the_cron_and_counts_as_retiming() -> None:
    schedule = new_schedule(VALID, now=NOW)
    later = NOW + timedelta(minutes=1)
    changed = patched(schedule, {"every_s": 60}, now=later)
    assert changed.cron is None and changed.every_s == 60
    assert changed.updated_at == later and changed.created_at == NOW
    assert timing_changed(schedule, changed)
    assert not timing_changed(schedule, patched(schedule, {"enabled": False}, now=later))


def test_a_patch_is_validated_as_a_whole_against_the_task() -> None:
    schedule = new_schedule(VALID, now=NOW)
    assert patched(schedule, {"task": "long_task"}, now=NOW).call()["steps"] == 5
    with pytest.raises(InvalidArgument) as caught:
        patched(schedule, {"task": "noop"}, now=NOW)  # noop takes no argument; [5] stays
    assert caught.value.field == "args"
