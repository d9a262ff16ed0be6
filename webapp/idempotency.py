"""Idempotency-Key claims: the first request with a key wins; a replay gets the first one's id.

Tasks and workflows both claim keys this way, each under its own Redis key; a key
reused with a different body is a 409, never a silent replay.
"""

from __future__ import annotations

import json

import redis

from tasks import defaults
from webapp.errors import Conflict


def claim(
    client: redis.Redis, redis_key: str, body_fingerprint: str, new_id: str, id_field: str
) -> str | None:
    """Claim ``redis_key`` for ``new_id``; return the first claimant's id if it was taken."""
    claimed = json.dumps({"fingerprint": body_fingerprint, id_field: new_id})
    if client.set(redis_key, claimed, nx=True, ex=defaults.IDEMPOTENCY_TTL_S):
        return None
    raw = client.get(redis_key)
    if raw is None:  # expired between the two calls: the key is free again
        return claim(client, redis_key, body_fingerprint, new_id, id_field)
    first = json.loads(raw)
    if first["fingerprint"] != body_fingerprint:
        raise Conflict(
            "this Idempotency-Key was already used with a different body",
            field="Idempotency-Key",
        )
    return str(first[id_field])
