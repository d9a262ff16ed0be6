"""Server-Sent Events framing, shared by every streaming endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import Response

KEEPALIVE = ": keepalive\n\n"
# What a stream cut short tells EventSource to wait before reconnecting, in ms.
RECONNECT_HINT_MS = 1000


def event(name: str, data: Any, event_id: str | None = None) -> str:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {name}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"


def retry_hint(ms: int = RECONNECT_HINT_MS) -> str:
    return f"retry: {ms}\n\n"


def stream(chunks: Iterable[str]) -> Response:
    response = Response(chunks, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    # Tell proxies such as nginx not to buffer the stream.
    response.headers["X-Accel-Buffering"] = "no"
    return response
