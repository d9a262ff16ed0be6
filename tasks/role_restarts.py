"""Restarts per role of ``taskrelay up``: written by its supervisor, read by the web.

The supervisor runs in the ``taskrelay up`` process and the web in others, so the
counts travel through one Redis hash (``keys.ROLE_RESTARTS``), role name to count.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis
from redis.typing import EncodableT, FieldT

from tasks import keys
from tasks.text import as_text


def write(client: redis.Redis, restarts: Mapping[str, int]) -> None:
    """Replace the whole hash at once, so no role of an earlier run lingers in it."""
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.ROLE_RESTARTS)
        if restarts:
            fields: dict[FieldT, EncodableT] = {role: count for role, count in restarts.items()}
            pipe.hset(keys.ROLE_RESTARTS, mapping=fields)
        pipe.execute()


def read(client: redis.Redis) -> dict[str, int]:
    """Restarts by role, sorted by name; empty when no supervisor wrote any."""
    raw = client.hgetall(keys.ROLE_RESTARTS)
    return {as_text(role): int(count) for role, count in sorted(raw.items())}
