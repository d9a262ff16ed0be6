"""The envelope's JSON: orjson's document where it reads back as kombu's, kombu's otherwise."""

from __future__ import annotations

import enum
import math
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from kombu.exceptions import EncodeError
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads

from tasks.celery_ext import envelope_json


def envelope(**headers: Any) -> dict[str, Any]:
    """A task message's envelope as kombu's Redis transport stores it."""
    task_id = str(uuid.uuid4())
    return {
        "body": "W1tdLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsfV0=",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": "taskrelay.tasks.noop",
            "id": task_id,
            "eta": None,
            "retries": 0,
            "timelimit": [330, 300.5],
            "ignore_result": False,
            "stamps": {},
            **headers,
        },
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "tasks"},
            "priority": 0,
            "body_encoding": "base64",
        },
    }


def test_celerys_envelope_is_written_by_orjson_and_reads_back_as_kombus() -> None:
    message = envelope(origin="gen1@höst", argsrepr="('naïve ☃',)")
    written = envelope_json.dumps(message)
    assert isinstance(written, bytes)  # orjson's: kombu writes str
    assert loads(written) == loads(kombu_dumps(message)) == message


class Colour(enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    "value",
    [
        uuid.UUID("12345678-1234-5678-1234-567812345678"),  # orjson: a plain string
        datetime(2026, 12, 7, 12, 0, tzinfo=UTC),  # orjson: a plain string
        (1, 2),  # orjson: a list
        2**70,  # orjson: refused
        b"raw",  # orjson: refused
    ],
    ids=["uuid", "datetime", "tuple", "big-int", "bytes"],
)
def test_a_header_orjson_would_write_differently_is_written_by_kombu(value: Any) -> None:
    message = envelope(custom=value)
    written = envelope_json.dumps(message)
    assert written == kombu_dumps(message)
    assert loads(written)["headers"]["custom"] == loads(kombu_dumps(message))["headers"]["custom"]


def test_nan_is_written_as_kombu_writes_it_not_as_null() -> None:
    written = envelope_json.dumps(envelope(custom=math.nan))
    assert isinstance(written, str)
    assert math.isnan(loads(written)["headers"]["custom"])


def test_a_value_kombu_refuses_is_still_refused() -> None:
    with pytest.raises((TypeError, EncodeError)):
        envelope_json.dumps(envelope(custom=Colour.RED))


@pytest.mark.parametrize(
    "value",
    [
        "naïve ☃",
        uuid.UUID("12345678-1234-5678-1234-567812345678"),  # kombu: a __type__ object
        datetime(2026, 12, 7, 12, 0, tzinfo=UTC),  # kombu: a __type__ object
        2**70,  # beyond 64 bits: orjson alone would read a float
        12345678901234567890,  # 20 digits, within orjson's unsigned range
    ],
    ids=["non-ascii", "uuid", "datetime", "big-int", "u64"],
)
def test_an_envelope_reads_as_kombu_reads_it(value: Any) -> None:
    for written in (kombu_dumps(envelope(custom=value)), envelope_json.dumps(envelope())):
        for text in (written, written.encode() if isinstance(written, str) else written.decode()):
            read = envelope_json.loads(text)
            assert read == loads(text)
            assert type(read["headers"].get("custom")) is type(loads(text)["headers"].get("custom"))


def test_an_escaped_type_key_is_read_by_kombus_hook() -> None:
    # "\u005f_type__" is "__type__": kombu's hook turns the object into a datetime.
    text = '{"at": {"\\u005f_type__": "datetime", "__value__": "2026-12-07T12:00:00+00:00"}}'
    assert envelope_json.loads(text) == loads(text)
    assert isinstance(envelope_json.loads(text)["at"], datetime)


@pytest.mark.parametrize("text", ["{", b"\xff\xfe{}", "[1,]", '"\\ud800" x'], ids=repr)
def test_a_text_that_is_not_json_raises_as_kombu_raises(text: bytes | str) -> None:
    try:
        loads(text)
    except ValueError as error:
        expected = error
    with pytest.raises(type(expected), match=re.escape(str(expected))):
        envelope_json.loads(text)
