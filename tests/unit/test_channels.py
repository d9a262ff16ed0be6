"""Channel names, patterns, ids, positions and the pub/sub payload, as plain functions."""

from __future__ import annotations

import json

import pytest

from tasks import channels
from tasks.channels import InvalidChannel
from tasks.channels.cursor import Cursor


@pytest.mark.parametrize(
    "name", ["news", "a", "task:pubsub:channel", "eu.prices_v2-live", "9" * 64]
)
def test_valid_names_are_accepted(name: str) -> None:
    assert channels.check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".news", "news/eu", "x" * 65, "taskrelay:x", "Celery", "a.celery.pidbox"]
)
def test_invalid_or_reserved_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidChannel):
        channels.check_name(name)


def test_a_star_matches_exactly_one_segment() -> None:
    pattern = channels.parse_pattern("news.*.prices")
    assert pattern.matches("news.eu.prices")
    assert not pattern.matches("news.eu.fr.prices")
    assert not pattern.matches("news..prices")
    assert not pattern.matches("news.eu.pricesX")
    assert pattern.redis_glob() == "taskrelay:pubsub:news.*.prices"


def test_literal_segments_are_not_regular_expressions() -> None:
    pattern = channels.parse_pattern("a-b.*")
    assert pattern.matches("a-b.c")
    assert not pattern.matches("aXb.c")


@pytest.mark.parametrize("text", ["", "news.**", "new*", "news.", "[a].*", "-x.*", "_kombu.*"])
def test_malformed_patterns_are_refused(text: str) -> None:
    with pytest.raises(InvalidChannel):
        channels.parse_pattern(text)


def test_message_ids_are_32_hex_digits() -> None:
    message_id = channels.new_message_id()
    assert channels.check_message_id(message_id) == message_id
    with pytest.raises(InvalidChannel):
        channels.check_message_id("1700000000000-0")


def test_positions_compare_by_milliseconds_then_sequence() -> None:
    assert channels.parse_position("5-10") < channels.parse_position("6-0")
    assert channels.format_position((17, 3)) == "17-3"
    with pytest.raises(ValueError, match="not a stream position"):
        channels.parse_position("abc")


def test_the_published_payload_gives_back_the_envelope_as_published() -> None:
    envelope = channels.envelope("ab" * 16, "news", {"x": [1, "é"]}, "2030-01-01T00:00:00+00:00")
    delivery = channels.from_payload("news", channels.pubsub_payload("12-3", envelope).encode())
    assert delivery.envelope_json == envelope
    assert delivery.position == (12, 3)
    assert delivery.message_id == "ab" * 16
    assert json.loads(envelope)["data"] == {"x": [1, "é"]}


def test_a_cursor_takes_each_position_once_and_only_forwards() -> None:
    cursor = Cursor(seen={"a": (10, 0)})

    def make(channel: str, ms: int) -> channels.Delivery:
        return channels.Delivery(channel, (ms, 0), "0" * 32, "{}")

    assert not cursor.take(make("a", 10))
    assert cursor.take(make("a", 11))
    assert not cursor.take(make("a", 11))
    assert cursor.take(make("b", 1))  # an unseen channel starts after the default


def test_a_pubsub_message_gives_its_delivery_and_anything_else_gives_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    envelope = channels.envelope("cd" * 16, "news.eu", 1, "2030-01-01T00:00:00+00:00")
    message = {
        "type": "pmessage",
        "channel": b"taskrelay:pubsub:news.eu",
        "data": channels.pubsub_payload("7-0", envelope).encode(),
    }
    delivery = channels.from_pubsub(message)
    assert delivery is not None
    assert (delivery.channel, delivery.position, delivery.envelope_json) == (
        "news.eu",
        (7, 0),
        envelope,
    )
    assert channels.from_pubsub(None) is None
    assert channels.from_pubsub({"type": "psubscribe", "channel": b"x", "data": 1}) is None
    assert channels.from_pubsub({**message, "data": b"not json"}) is None
    assert "malformed message on channel 'news.eu'" in caplog.text
