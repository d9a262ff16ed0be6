"""JSON text: orjson's where it reads back as the standard library's, theirs otherwise."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tasks import json_text


def test_json_values_are_written_by_orjson_and_read_back_equal() -> None:
    value = {
        "state": "QUEUED",
        "retries": 0,
        "at": "2026-12-07T12:00:00+00:00",
        "ratio": 0.5,
        "ok": True,
        "worker": None,
        "args": [1, ["naïve ☃", {"n": -2}]],
    }
    assert json_text.exact(value) is not None
    text = json_text.dumps(value)
    assert " " not in text.replace("naïve ☃", "")  # orjson's: no spaces between parts
    assert json.loads(text) == value


@pytest.mark.parametrize(
    "value",
    [
        [uuid.UUID("12345678-1234-5678-1234-567812345678")],
        [datetime(2026, 12, 7, tzinfo=UTC)],
        [(1, 2)],
        [2**70],
        {"x": math.inf},
    ],
    ids=["uuid", "datetime", "tuple", "big-int", "infinity"],
)
def test_values_orjson_writes_otherwise_go_to_the_callers_encoder(value: Any) -> None:
    assert json_text.exact(value) is None
    assert json_text.dumps(value, lambda v: "fallback") == "fallback"


def test_nan_keeps_the_standard_librarys_text() -> None:
    assert json_text.dumps([math.nan]) == "[NaN]"
