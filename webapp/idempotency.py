"""Idempotency-Key claims: the first request with a key wins; a replay gets the first one's id.

Tasks and workflows both claim keys this way, each under its own Redis key; a key
reused with a different body is a 409, never a silent replay.

A claim is stored before what it names, so a request can fail (a Redis that stopped
answering after it took the claim) and leave a claim that names nothing. Once the
claim is older than IN_FLIGHT_S, no request is still writing what it names: the next
request with that key takes it over (``take_over``) and writes it, under the same id.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from tasks import defaults
from tasks.connections import WEB_STALL_BOUND_S
from webapp.errors import Conflict

# A request that claimed a key has written what the claim names, or failed, within this
# long: a web request's Redis calls end within WEB_STALL_BOUND_S; the rest is room.
IN_FLIGHT_S = WEB_STALL_BOUND_S + 2.0


@dataclass(frozen=True)
class Claim:
    """A stored claim: the id its first request gave, and when it was made."""

    id: str
    # Seconds since the epoch; 0 for a claim stored before claims recorded it.
    claimed_at: float
    raw: bytes | str

    def in_flight(self) -> bool:
        """Whether the request that made it may still be writing what it names."""
        return time.time() - self.claimed_at < IN_FLIGHT_S


def claim_first(
    client: redis.Redis, redis_key: str, body_fingerprint: str, new_id: str, id_field: str
) -> Claim | None:
    """Claim ``redis_key`` for ``new_id``; return the first request's claim if it was taken."""
    claimed = _claim_value(body_fingerprint, new_id, id_field)
    if client.set(redis_key, claimed, nx=True, ex=defaults.IDEMPOTENCY_TTL_S):
        return None
    raw = client.get(redis_key)
    if raw is None:  # expired between the two calls: the key is free again
        return claim_first(client, redis_key, body_fingerprint, new_id, id_field)
    return _stored(raw, body_fingerprint, id_field)


def take_over(
    client: redis.Redis, redis_key: str, first: Claim, body_fingerprint: str, id_field: str
) -> Claim | None:
    """Claim anew, for the same id, a key whose first request failed.

    Returns None once this request holds the key, else the claim another request
    stored since ``first`` was read (it took the key over first).
    """
    with client.pipeline() as pipe:
        try:
            pipe.watch(redis_key)  # type: ignore[no-untyped-call]
            raw = pipe.get(redis_key)
            if raw is not None and raw != first.raw:
                return _stored(raw, body_fingerprint, id_field)
            pipe.multi()
            claimed = _claim_value(body_fingerprint, first.id, id_field)
            pipe.set(redis_key, claimed, ex=defaults.IDEMPOTENCY_TTL_S)
            pipe.execute()
        except redis.WatchError:
            # Changed while this request looked: whoever changed it holds it, unless
            # it expired or was given up, when this request tries again.
            raw = client.get(redis_key)
            if raw is None:
                return take_over(client, redis_key, first, body_fingerprint, id_field)
            return _stored(raw, body_fingerprint, id_field)
    return None


def _claim_value(body_fingerprint: str, new_id: str, id_field: str) -> str:
    claim = {"fingerprint": body_fingerprint, id_field: new_id, "claimed_at": time.time()}
    return json.dumps(claim)


def _stored(raw: bytes | str, body_fingerprint: str, id_field: str) -> Claim:
    first = json.loads(raw)
    if first["fingerprint"] != body_fingerprint:
        raise Conflict(
            "this Idempotency-Key was already used with a different body",
            field="Idempotency-Key",
        )
    return Claim(id=str(first[id_field]), claimed_at=float(first.get("claimed_at", 0)), raw=raw)
