"""The web's JSON answers: orjson's bytes, Flask's document."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from markupsafe import Markup

from webapp.json_provider import OrjsonProvider


@dataclasses.dataclass
class Point:
    x: int
    y: int


DOCUMENTS = [
    pytest.param({"b": 1, "a": [1, 2.5, None, True], "c": {"z": "", "y": "é"}}, id="nested"),
    pytest.param(
        {
            "at": datetime(2026, 12, 6, 11, 30, tzinfo=UTC),
            "id": uuid.UUID(int=7),
            "price": Decimal("1.10"),
            "point": Point(1, 2),
            "html": Markup("<b>x</b>"),
        },
        id="flask-types",
    ),
    pytest.param([{"big": 2**70}], id="beyond-64-bits"),
    pytest.param({1: "one", 2: "two"}, id="integer-keys"),
    pytest.param(None, id="null"),
]


def _apps() -> tuple[Flask, Flask]:
    standard, fast = Flask("standard"), Flask("fast")
    fast.json = OrjsonProvider(fast)
    assert isinstance(standard.json, DefaultJSONProvider)
    return standard, fast


def _answer(app: Flask, document: Any) -> tuple[bytes, str]:
    with app.app_context():
        response = app.json.response(document)
    return response.get_data(), response.mimetype


@pytest.mark.parametrize("document", DOCUMENTS)
def test_an_answer_holds_the_document_flask_would_send(document: Any) -> None:
    standard, fast = _apps()
    expected, expected_type = _answer(standard, document)
    body, mimetype = _answer(fast, document)
    assert mimetype == expected_type == "application/json"
    assert body.endswith(b"\n")
    assert json.loads(body) == json.loads(expected)
    # Keys come sorted, as Flask sorts them.
    assert list(json.loads(body) or {}) == list(json.loads(expected) or {})


def test_an_answer_is_compact_and_writes_text_as_utf8() -> None:
    _, fast = _apps()
    body, _ = _answer(fast, {"name": "café", "n": [1, 2]})
    assert body == '{"n":[1,2],"name":"café"}\n'.encode()


def test_an_answer_in_debug_mode_is_indented() -> None:
    standard, fast = _apps()
    standard.debug = fast.debug = True
    body, _ = _answer(fast, {"b": [1], "a": 2})
    assert body == _answer(standard, {"b": [1], "a": 2})[0]


def test_a_number_that_is_not_one_is_written_as_null() -> None:
    _, fast = _apps()
    body, _ = _answer(fast, {"result": float("nan")})
    assert json.loads(body) == {"result": None}


def test_what_neither_encoder_takes_is_refused_as_flask_refuses_it() -> None:
    standard, fast = _apps()
    for app in (standard, fast):
        with app.app_context(), pytest.raises(TypeError, match="not JSON serializable"):
            app.json.response({"unknown": object()})


def test_dumps_with_other_options_is_the_standard_librarys() -> None:
    standard, fast = _apps()
    document = {"b": 1, "a": "é"}
    with fast.app_context():
        assert fast.json.dumps(document) == '{"a":"é","b":1}'
        assert fast.json.dumps(document, indent=3) == standard.json.dumps(document, indent=3)
