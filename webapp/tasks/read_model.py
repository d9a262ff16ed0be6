"""Reading task state for the API: one document, a page of documents from the task
indexes, and a live stream of one task."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from tasks import keys, records, task_index
from tasks.connections import UNREACHABLE
from webapp import sse
from webapp.services import Services

# A task id is a UUID; anything much longer was never submitted.
TASK_ID_MAX_CHARS = 64


def load(services: Services, task_id: str, *, with_history: bool = False) -> dict[str, Any] | None:
    if len(task_id) > TASK_ID_MAX_CHARS:
        return None
    if with_history:
        # The record, the result and the history in one read.
        raw = records.read_one_raw(services.redis, services.results, task_id)
        record, raw_meta = raw.record, raw.meta
    else:
        [(record, raw_meta)] = records.read_raw(services.redis, services.results, [task_id])
    if not record:
        return None
    doc = records.document(task_id, record, records.parse_meta(raw_meta))
    if with_history:
        doc["history"] = records.parse_history(raw.history)
    return doc


def page(services: Services, query: task_index.Query) -> dict[str, Any]:
    """One page of tasks, newest first, with the next page's cursor and the counts."""
    found = task_index.read_page(services.redis, query, time.time())
    docs = [
        records.document(task_id, record, records.parse_meta(raw_meta))
        for task_id, (record, raw_meta) in zip(
            found.task_ids,
            records.read_raw(services.redis, services.results, found.task_ids),
            strict=True,
        )
        if record  # removed since it was indexed (an unsent task)
    ]
    return {
        "tasks": docs,
        "next_cursor": None if found.next_cursor is None else found.next_cursor.encode(),
        "counts": found.counts,
    }


def event_stream(services: Services, task_id: str, heartbeat_s: float) -> Iterator[str]:
    """State events until the task is finished; the first is the current state.

    The subscription starts before the first read, so no change can fall between
    them; every wake-up re-reads the state, so a missed message only delays.
    """
    pubsub = services.results.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]
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
