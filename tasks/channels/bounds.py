"""Every bound on what channels keep in Redis, with its default and its unit.

The web reads each as a setting (``TASKRELAY_CHANNEL_*``, webapp/settings.py) and
sends the retention with every message, so the relay script trims by the web's
settings; the OpenAPI document states them from the same values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Messages a channel retains; older ones are trimmed.
DEFAULT_RETENTION = 10_000
# Bytes of messages (their envelopes, as stored) a channel retains; the oldest
# are trimmed past it, the newest is always kept.
DEFAULT_RETENTION_BYTES = 8 * 1024 * 1024
# A channel nobody published to for this long is gone: its stream, positions and
# byte count expire, and it leaves the index (and stops counting towards the cap).
DEFAULT_IDLE_TTL_S = 7 * 86_400
# Channels that may exist at once; a message to a new name past it is refused.
DEFAULT_MAX_CHANNELS = 10_000
# The largest message, as the bytes of its `data` written as compact JSON.
DEFAULT_MESSAGE_MAX_BYTES = 64 * 1024
# References the recent index keeps (every channel together, newest last): how
# far back a pattern subscriber can resume or catch up. About 150 bytes each.
DEFAULT_RECENT_MESSAGES = 10_000


@dataclass(frozen=True)
class Retention:
    """What the relay script keeps of a channel, sent by the web with each message."""

    messages: int = DEFAULT_RETENTION
    bytes: int = DEFAULT_RETENTION_BYTES
    idle_ttl_s: int = DEFAULT_IDLE_TTL_S
    recent: int = DEFAULT_RECENT_MESSAGES


def data_bytes(data: Any) -> int:
    """The size a message's data is measured by: compact JSON, ASCII as the envelope stores it."""
    return len(json.dumps(data, separators=(",", ":")))
