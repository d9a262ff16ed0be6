"""Channels: valid names and patterns, message ids, stream positions and the envelope.

The web, the relay task and the terminal subscriber all build names, ids and
envelopes here, so they agree by construction.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import celeryconfig
from tasks import keys
from tasks.errors import TaskrelayError
from tasks.text import as_text

logger = logging.getLogger(__name__)

NAME_MAX_CHARS = 64
PATTERN_MAX_CHARS = 64
# A channel name, as a regular expression the whole name must match; public so the
# OpenAPI document states the very rule check_name applies.
NAME_PATTERN = rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{NAME_MAX_CHARS - 1}}}"
_NAME = re.compile(NAME_PATTERN)
_SEGMENT = re.compile(r"[A-Za-z0-9_:-]+")
# What one `*` of a pattern stands for: one dot-separated segment.
_ANY_SEGMENT = r"[A-Za-z0-9_:-]+"

# Names Redis already uses for Celery, kombu or taskrelay itself. Streams and
# pub/sub live under our prefix anyway; refusing these as well keeps a channel
# from ever being mistaken for (or mistaken by a tool for) one of those keys.
RESERVED_PREFIXES = (keys.PREFIX, keys.CELERY_RESULT_PREFIX, "_kombu.", "unacked", "celeryev")
RESERVED_SUFFIXES = (".celery.pidbox", ".reply.celery.pidbox")
RESERVED_NAMES = frozenset({"celery", *celeryconfig.task_queues})

# A message id is 32 lowercase hex digits (a UUID without dashes).
MESSAGE_ID_PATTERN = r"[0-9a-f]{32}"
_MESSAGE_ID = re.compile(MESSAGE_ID_PATTERN)
# A stream position, as Redis writes it: milliseconds-sequence.
_POSITION = re.compile(r"(\d{1,20})-(\d{1,20})")

Position = tuple[int, int]
# Before every real position, and after every real one.
START: Position = (0, 0)
END: Position = (2**64 - 1, 2**64 - 1)


class InvalidChannel(TaskrelayError):
    """A channel name, pattern or message id that taskrelay refuses; the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_name(name: str, *, field: str = "channel") -> str:
    if not _NAME.fullmatch(name):
        raise InvalidChannel(
            field,
            f"channel names are 1 to {NAME_MAX_CHARS} letters, digits and . _ - :, "
            f"starting with a letter or digit; got {name[:80]!r}",
        )
    lowered = name.lower()
    if (
        lowered.startswith(RESERVED_PREFIXES)
        or lowered.endswith(RESERVED_SUFFIXES)
        or lowered in RESERVED_NAMES
    ):
        raise InvalidChannel(
            field, f"{name!r} is reserved for Celery's or taskrelay's own keys; choose another name"
        )
    return name


@dataclass(frozen=True)
class Pattern:
    """A channel pattern: dot-separated segments, where `*` matches exactly one segment."""

    text: str
    regex: re.Pattern[str]

    def matches(self, channel: str) -> bool:
        return self.regex.fullmatch(channel) is not None

    def redis_glob(self) -> str:
        """A glob for PSUBSCRIBE, built from the validated segments.

        Redis's `*` also crosses dots, so it may hear more than the pattern;
        callers still filter with ``matches``.
        """
        return keys.CHANNEL_PUBSUB_PREFIX + self.text


def parse_pattern(text: str) -> Pattern:
    problem = (
        f"a pattern is 1 to {PATTERN_MAX_CHARS} characters of dot-separated segments, "
        "each either * or letters, digits and _ - :, such as news.* or *.eu.prices"
    )
    if not 1 <= len(text) <= PATTERN_MAX_CHARS:
        raise InvalidChannel("pattern", problem)
    parts = []
    for segment in text.split("."):
        if segment == "*":
            parts.append(_ANY_SEGMENT)
        elif _SEGMENT.fullmatch(segment):
            parts.append(re.escape(segment))
        else:
            raise InvalidChannel("pattern", f"{problem}; got {text[:80]!r}")
    first = text.split(".", 1)[0].lower()
    if first != "*" and not first[0].isalnum():
        raise InvalidChannel("pattern", f"{problem}; a name starts with a letter or digit")
    if first != "*" and first.startswith(RESERVED_PREFIXES):
        raise InvalidChannel("pattern", f"{text!r} reaches into Celery's or taskrelay's own keys")
    return Pattern(text=text, regex=re.compile(r"\.".join(parts)))


def new_message_id() -> str:
    return uuid.uuid4().hex


def check_message_id(message_id: str, *, field: str = "last_event_id") -> str:
    if not _MESSAGE_ID.fullmatch(message_id):
        raise InvalidChannel(
            field, f"a message id is 32 lowercase hex digits; got {message_id[:80]!r}"
        )
    return message_id


def parse_position(raw: str | bytes) -> Position:
    text = as_text(raw)
    found = _POSITION.fullmatch(text)
    if found is None:
        raise ValueError(f"not a stream position: {text!r}")
    return int(found.group(1)), int(found.group(2))


def format_position(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def envelope(message_id: str, channel: str, data: Any, published_at: str | None = None) -> str:
    """The message as every subscriber receives it, serialized once."""
    return json.dumps(
        {
            "id": message_id,
            "channel": channel,
            "data": data,
            "published_at": published_at or datetime.now(UTC).isoformat(),
        },
        separators=(",", ":"),
    )


def pubsub_payload(position: str, envelope_json: str) -> str:
    """What is PUBLISHed: the envelope and its stream position, for gap filling."""
    return '{"position":"' + position + '","message":' + envelope_json + "}"


@dataclass(frozen=True)
class Delivery:
    """One message as the stream or pub/sub hands it over."""

    channel: str
    position: Position
    message_id: str
    envelope_json: str


def from_payload(channel: str, payload: str | bytes) -> Delivery:
    text = as_text(payload)
    decoded = json.loads(text)
    position = decoded["position"]
    # The envelope is sliced out as published rather than serialized again:
    # one encoding per message, however many subscribers receive it.
    head = len(pubsub_payload(position, ""))
    return Delivery(
        channel=channel,
        position=parse_position(position),
        message_id=str(decoded["message"]["id"]),
        envelope_json=text[head - 1 : -1],
    )


def channel_of_pubsub(pubsub_channel: str | bytes) -> str:
    return as_text(pubsub_channel).removeprefix(keys.CHANNEL_PUBSUB_PREFIX)


def from_pubsub(message: dict[str, Any] | None) -> Delivery | None:
    """The delivery a pub/sub message carries; None for no message, for a subscription's
    confirmations and for a payload that is not ours (logged: it must not end a
    subscriber's loop)."""
    if message is None or message["type"] not in ("message", "pmessage"):
        return None
    channel = channel_of_pubsub(message["channel"])
    try:
        return from_payload(channel, message["data"])
    except (ValueError, KeyError, TypeError):
        logger.warning("ignored a malformed message on channel %r", channel[:80])
        return None
