"""JSON text: orjson's where it reads back as the standard library's, theirs otherwise."""

from __future__ import annotations

import json
import math
import re
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


@pytest.mark.parametrize(
    "text",
    [
        b'{"status": "SUCCESS", "result": {"n": -2, "ratio": 0.5, "s": "na\\u00efve"}}',
        '{"state":"STARTED","at":"2026-12-07T20:00:00+00:00","worker":"tasks-1@host"}',
        "[]",
        "-0",
        "18446744073709551615",
        '{"a": 1, "a": 2}',
        "1.0000000000000002",
    ],
    ids=["bytes", "text", "empty", "minus-zero", "u64-max", "repeated-key", "float"],
)
def test_texts_read_as_the_standard_library_reads_them(text: bytes | str) -> None:
    value = json_text.loads(text)
    assert value == json.loads(text)
    assert type(value) is type(json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        "123456789012345678901234567890",
        "[-9223372036854775809]",
        '{"n": 18446744073709551616}',
    ],
    ids=["big", "below-i64", "above-u64"],
)
def test_integers_beyond_64_bits_stay_integers(text: str) -> None:
    # orjson alone would read each as a float; the digit check sends them on.
    assert json_text.loads(text) == json.loads(text)
    assert json_text.loads(text.encode()) == json.loads(text)
    assert "e+" not in repr(json_text.loads(text))


@pytest.mark.parametrize(
    "text", ["NaN", "[1e400]", '"\\ud800"', "\ufeff[1]".encode("utf-8")], ids=repr
)
def test_what_orjson_refuses_is_read_by_the_standard_library(text: bytes | str) -> None:
    assert repr(json_text.loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["{", b"\x80\x04pickle", "[1,]"], ids=repr)
def test_a_text_that_is_not_json_raises_the_standard_librarys_error(text: bytes | str) -> None:
    try:
        json.loads(text)
    except ValueError as error:
        expected = error
    with pytest.raises(type(expected), match=re.escape(str(expected))):
        json_text.loads(text)
