"""Reading task state for the API: one document, many documents, and a live stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tasks import keys, records
from tasks.text import as_text
from webapp import sse
from webapp.errors import UNREACHABLE
from webapp.services import Services

# A task id is a UUID; anything much longer was never submitted.
TASK_ID_MAX_CHARS = 64


def load(services: Services, task_id: str) -> dict[str, Any] | None:
    if len(task_id) > TASK_ID_MAX_CHARS:
        return None
    [(record, raw_meta)] = records.read_raw(services.redis, services.results, [task_id])
    if not record:
        return None
    return records.document(task_id, record, records.parse_meta(raw_meta))


def recent(
    services: Services, *, state: str | None, task: str | None, limit: int, scan_max: int
) -> list[dict[str, Any]]:
    """Newest tasks first, filtered; scans at most scan_max of the newest ids."""
    filtered = state is not None or task is not None
    window = scan_max if filtered else limit
    task_ids = [as_text(t) for t in services.redis.zrevrange(keys.TASK_INDEX, 0, window - 1)]
    found: list[dict[str, Any]] = []
    batch_size = max(limit, 100)
    for start in range(0, len(task_ids), batch_size):
        batch = task_ids[start : start + batch_size]
        for task_id, (record, raw_meta) in zip(
            batch, records.read_raw(services.redis, services.results, batch), strict=True
        ):
            if not record:
                continue  # expired; the index forgets it later
            doc = records.document(task_id, record, records.parse_meta(raw_meta))
            if (state is None or doc["state"] == state) and (task is None or doc["task"] == task):
                found.append(doc)
                if len(found) == limit:
                    return found
    return found


def event_stream(services: Services, task_id: str, heartbeat_s: float) -> Iterator[str]:
    """State events until the task is finished; the first is the current state.

    The subscription starts before the first read, so no change can fall between
    them; every wake-up re-reads the state, so a missed message only delays.
    """
    pubsub = services.results.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    try:
        pubsub.subscribe(keys.celery_result(task_id))
        last: dict[str, Any] | None = None
        while True:
            doc = load(services, task_id)
            if doc is None:
                return
            if doc != last:
                yield sse.event("state", doc)
                last = doc
            if doc["state"] in records.TERMINAL_STATES:
                return
            if pubsub.get_message(timeout=heartbeat_s) is None:
                yield sse.KEEPALIVE
    except UNREACHABLE:
        yield sse.retry_hint()
    finally:
        pubsub.close()
