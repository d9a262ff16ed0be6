"""A message's kwargsrepr is the text Celery's saferepr writes, taken by repr where they agree."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
from celery.utils.saferepr import saferepr

from tasks.celery_ext.argument_repr import kwargs_repr, repr_agrees

MAXSIZE = 1024  # Celery's kwargsrepr_maxsize
MAXLEVELS = 3  # Celery's task_repr_maxlevels

RELAY_KWARGS = {
    "channel": "orders.eu",
    "message_id": "01JF7Q0000000000000000000",
    "data": {"seq": 12, "sent_at": 1765000000.25, "items": ["a-1", "b-2"]},
    "published_at": "2026-12-07T03:00:00.000000+00:00",
    "retention": 1000,
}

CASES = [
    pytest.param({}, id="empty"),
    pytest.param({"number": 7}, id="a-number"),
    pytest.param(RELAY_KWARGS, id="relay-arguments"),
    pytest.param({"a": "it's"}, id="single-quote"),
    pytest.param({"a": 'say "hi"'}, id="double-quote"),
    pytest.param({"a": "back\\slash"}, id="backslash"),
    pytest.param({"a": "two\nlines", "b": "tab\there"}, id="control-characters"),
    pytest.param({"a": "é ☃ 漢字"}, id="non-ascii"),
    pytest.param({"a": {"b": {"c": 1}}}, id="three-levels"),
    pytest.param({"a": {"b": {"c": {"d": 1}}}}, id="four-levels"),
    pytest.param({"a": [[[1]]]}, id="lists-past-the-levels"),
    pytest.param({"a": "x" * 1010}, id="just-within-the-bound"),
    pytest.param({"a": "x" * 1100}, id="past-the-bound"),
    pytest.param({"a": [1] * 600}, id="long-list"),
    pytest.param({"a": float("nan"), "b": float("inf"), "c": -0.0, "d": 10**30}, id="numbers"),
    pytest.param({"a": None, "b": True, "c": False, "d": [], "e": {}}, id="empties"),
    pytest.param({"a": ("t", 1)}, id="not-json-a-tuple"),
    pytest.param({"a": {1: "int key"}}, id="not-json-an-int-key"),
]


@pytest.mark.parametrize("kwargs", CASES)
def test_the_text_is_the_one_saferepr_writes(kwargs: dict[str, Any]) -> None:
    assert kwargs_repr(kwargs, maxsize=MAXSIZE, maxlevels=MAXLEVELS) == saferepr(
        kwargs, MAXSIZE, maxlevels=MAXLEVELS
    )


def test_random_json_arguments_read_as_saferepr_writes_them() -> None:
    rng = random.Random(20261207)
    alphabet = string.ascii_letters + string.digits + " _-.é☃'\"\\\n\t{}[]"

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))

    def value(depth: int) -> Any:
        pick = rng.random()
        if depth > 5 or pick < 0.5:
            scalars = [rng.randint(-(10**20), 10**20), rng.random() * 1e9, None, True, text()]
            return rng.choice(scalars)
        if pick < 0.75:
            return [value(depth + 1) for _ in range(rng.randint(0, 6))]
        return {text(): value(depth + 1) for _ in range(rng.randint(0, 6))}

    by_repr = 0
    for _ in range(5_000):
        kwargs = {f"k{n}": value(1) for n in range(rng.randint(1, 5))}
        assert kwargs_repr(kwargs, maxsize=MAXSIZE, maxlevels=MAXLEVELS) == saferepr(
            kwargs, MAXSIZE, maxlevels=MAXLEVELS
        ), kwargs
        by_repr += repr_agrees(kwargs, MAXLEVELS)
    # Both ways were tried: the corpus is not all of one kind.
    assert 500 < by_repr < 4_500


@pytest.mark.parametrize(
    ("kwargs", "agrees"),
    [
        ({"number": 7}, True),
        (RELAY_KWARGS, True),
        ({"a": "it's"}, False),
        ({"a": {"b": {"c": {"d": 1}}}}, False),
        ({"a": ("t", 1)}, False),
    ],
)
def test_repr_is_taken_for_plain_json_only(kwargs: dict[str, Any], agrees: bool) -> None:
    assert repr_agrees(kwargs, MAXLEVELS) is agrees
