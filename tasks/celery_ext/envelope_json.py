"""A message's envelope as JSON: by orjson where that writes or reads kombu's document,
else by kombu.

The Redis transport stores each message as one JSON document: kombu's envelope
(the base64 body, its headers and properties). kombu writes it with the standard
library's encoder behind its own ``JSONEncoder``: a new encoder object for every
message and the standard library's C encoder with ASCII escapes, 10-20 µs for the
930 bytes of a task's envelope (about 2 % of a ``POST /api/tasks``). orjson, a C
library made for this, writes it in under 1 µs.

The two documents read back the same where the envelope holds only JSON's own
kinds, as Celery's headers and properties do; orjson's is kept only when it reads
back equal (tasks/json_text.py), and kombu writes every other envelope, as before.

A worker reads each envelope it fetches with kombu's ``loads``: the standard
library's decoder with kombu's hook called for every JSON object, 7-8 µs for a
task's. The hook turns an object of exactly the keys ``__type__`` and ``__value__``
into the value it names (a date, a UUID...). A text without ``__type__`` in it, and
without ``\\u`` escapes that could spell it, holds no such object, so the hook would
change nothing: such a text is read by orjson where it reads as the standard library
would (``json_text.loads``), in about 2 µs; every other text by kombu, as before.
"""

from __future__ import annotations

from typing import Any

from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from tasks import json_text

# What kombu's hook looks for, and the escape that could spell it in other bytes.
_TYPE_KEY = b"__type__"
_ESCAPE = b"\\u"


def dumps(envelope: dict[str, Any]) -> bytes | str:
    """The envelope as JSON that kombu's ``loads`` reads back to an equal envelope."""
    encoded = json_text.exact(envelope)
    return _kombu_dumps(envelope) if encoded is None else encoded


def loads(text: bytes | str) -> Any:
    """``kombu.utils.json.loads(text)``: by orjson where kombu's hook would change nothing."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _TYPE_KEY in raw or _ESCAPE in raw:
        return _kombu_loads(text)
    # The bytes already made, not the text again; kombu reads the caller's own text.
    return json_text.loads(raw, otherwise=lambda _: _kombu_loads(text))


def _kombu_loads(text: bytes | str) -> Any:
    return kombu_loads(text)  # type: ignore[no-untyped-call]  # kombu is untyped


def _kombu_dumps(envelope: dict[str, Any]) -> str:
    written: str = kombu_dumps(envelope)  # type: ignore[no-untyped-call]  # kombu is untyped
    return written
