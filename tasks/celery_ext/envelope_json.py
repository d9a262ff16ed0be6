"""A message's envelope as JSON: by orjson where that writes kombu's document, else by kombu.

The Redis transport stores each message as one JSON document: kombu's envelope
(the base64 body, its headers and properties). kombu writes it with the standard
library's encoder behind its own ``JSONEncoder``: a new encoder object for every
message and the standard library's C encoder with ASCII escapes, 10-20 µs for the
930 bytes of a task's envelope (about 2 % of a ``POST /api/tasks``). orjson, a C
library made for this, writes it in under 1 µs.

The two documents read back the same where the envelope holds only JSON's own
kinds, as Celery's headers and properties do; orjson's is kept only when it reads
back equal (tasks/json_text.py), and kombu writes every other envelope, as before.
"""

from __future__ import annotations

from typing import Any

from kombu.utils.json import dumps as kombu_dumps

from tasks import json_text


def dumps(envelope: dict[str, Any]) -> bytes | str:
    """The envelope as JSON that kombu's ``loads`` reads back to an equal envelope."""
    encoded = json_text.exact(envelope)
    return _kombu_dumps(envelope) if encoded is None else encoded


def _kombu_dumps(envelope: dict[str, Any]) -> str:
    written: str = kombu_dumps(envelope)  # type: ignore[no-untyped-call]  # kombu is untyped
    return written
