"""Submission bodies are validated field by field, with the field named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import tasks  # noqa: F401  (declares the tasks)
from webapp.errors import BadRequest, NotFound
from webapp.tasks.accept import delay_seconds
from webapp.tasks.request import fingerprint, parse_submission

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_valid_body_is_bound_to_the_task() -> None:
    submission = parse_submission({"task": "long_task", "args": [3], "priority": 0}, max_delay_s=60)
    assert submission.call == {"steps": 3, "delay_s": 0.5}
    assert submission.priority == 0
    assert submission.eta is None


def test_an_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(NotFound, match=r"known tasks: .*consume"):
        parse_submission({"task": "nope"}, max_delay_s=60)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"countdown": 61}, "countdown"),
        ({"countdown": "soon"}, "countdown"),
        ({"countdown": 1, "eta": "2030-01-01T00:00:00+00:00"}, "countdown"),
        ({"eta": "2030-01-01T00:00:00"}, "eta"),
        ({"priority": -1}, "priority"),
        ({"priority": True}, "priority"),
    ],
)
def test_scheduling_fields_are_checked(extra: dict[str, object], field: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_submission({"task": "consume", "args": [1], **extra}, max_delay_s=60)
    assert raised.value.field == field


def test_the_fingerprint_ignores_key_order() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_a_delay_is_whole_seconds_rounded_up_and_none_when_due() -> None:
    assert delay_seconds(None, NOW) is None
    assert delay_seconds(NOW - timedelta(seconds=5), NOW) is None
    assert delay_seconds(NOW + timedelta(seconds=0.2), NOW) == 1
    assert delay_seconds(NOW + timedelta(seconds=2), NOW) == 2
