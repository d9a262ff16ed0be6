"""The SSE reader follows the EventSource rules the server relies on."""

from __future__ import annotations

from taskrelay.sse_client import Event, parse


def test_events_are_split_on_blank_lines_with_their_names_ids_and_data() -> None:
    lines = [
        ": keepalive",
        "",
        "id: 1-0",
        "event: message",
        'data: {"a": 1}',
        "",
        "data: x",
        "data: y",
        "",
    ]
    assert list(parse(lines)) == [
        Event(event="message", data='{"a": 1}', id="1-0"),
        Event(event="message", data="x\ny", id=None),
    ]


def test_a_retry_hint_alone_is_not_an_event() -> None:
    assert list(parse(["retry: 1000", ""])) == []
