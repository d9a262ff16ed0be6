"""A small Server-Sent Events reader for the command line and the tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None = None


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a stream, as the EventSource specification reads them."""
    name, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield Event(event=name, data="\n".join(data), id=event_id)
            name, event_id = "message", None
            data = []
            continue
        if line.startswith(":"):
            continue  # a comment, such as a keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
