"""What became of each task of a drain: finished, run more than once, or missing, and where.

Runs are counted from taskrelay's task record, not from the broker: each start of
a task adds one to its record's ``deliveries:<attempt>`` field (``mark_started`` in
tasks/records.py), whichever transport delivered it. A task missing at the end is
looked for in its queue's lists and in kombu's unacked hash, where it would still
come back later; found in neither, it is gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kombu.transport.redis import Channel as RedisChannel

from tasks import keys, queues, records

# The first attempt's start counter in the task record (records.mark_started).
FIRST_ATTEMPT_STARTS = "deliveries:0"
CHUNK = 1000
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"


@dataclass(frozen=True)
class Census:
    tasks: int
    finished: int
    failed: int
    # Tasks started more than once, and the starts beyond the first summed over them.
    run_twice: int
    extra_runs: int
    # Never finished: still in a queue list, in the unacked hash, or nowhere.
    queued: int
    held: int
    gone: int
    first_done: datetime | None
    last_done: datetime | None

    @property
    def never_finished(self) -> int:
        return self.tasks - self.finished - self.failed

    @property
    def span_s(self) -> float:
        if self.first_done is None or self.last_done is None:
            return 0.0
        return (self.last_done - self.first_done).total_seconds()

    def counts(self) -> dict[str, int]:
        return {
            "finished": self.finished,
            "failed": self.failed,
            "never_finished": self.never_finished,
            "gone": self.gone,
            "still_queued": self.queued,
            "still_held": self.held,
            "run_twice": self.run_twice,
            "extra_runs": self.extra_runs,
        }


def take(client: Any, ids: Sequence[str], queue: str = queues.TASK_QUEUE) -> Census:
    raw_metas = _mget(client, [keys.celery_result(task_id) for task_id in ids])
    metas = [records.parse_meta(raw) or {} for raw in raw_metas]
    statuses = [meta.get("status") for meta in metas]
    done = [datetime.fromisoformat(m["date_done"]) for m in metas if m.get("status") == SUCCESS]
    missing = {
        i for i, status in zip(ids, statuses, strict=True) if status not in (SUCCESS, FAILURE)
    }
    starts = _starts(client, ids)
    queued = missing & queued_ids(client, queue)
    held = (missing - queued) & held_ids(client)
    twice = [count for count in starts if count > 1]
    return Census(
        tasks=len(ids),
        finished=len(done),
        failed=statuses.count(FAILURE),
        run_twice=len(twice),
        extra_runs=sum(count - 1 for count in twice),
        queued=len(queued),
        held=len(held),
        gone=len(missing - queued - held),
        first_done=min(done) if done else None,
        last_done=max(done) if done else None,
    )


def queued_ids(client: Any, queue: str) -> set[str]:
    """Ids of the messages waiting in the queue's lists (one per priority step)."""
    found: set[str] = set()
    for name in queues.redis_lists(queue):
        found.update(_message_id(json.loads(raw)) for raw in client.lrange(name, 0, -1))
    return found


def held_ids(client: Any) -> set[str]:
    """Ids of the messages delivered and not acknowledged (kombu's unacked hash)."""
    entries = client.hvals(RedisChannel.unacked_key)
    # Each entry is [message, exchange, routing key].
    return {_message_id(json.loads(raw)[0]) for raw in entries}


def _message_id(message: dict[str, Any]) -> str:
    return str(message.get("headers", {}).get("id", ""))


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _mget(client: Any, names: Sequence[str]) -> list[Any]:
    return [value for chunk in _chunks(names) for value in client.mget(chunk)]


def _starts(client: Any, ids: Sequence[str]) -> list[int]:
    counts: list[int] = []
    for chunk in _chunks(ids):
        with client.pipeline(transaction=False) as pipe:
            for task_id in chunk:
                pipe.hget(keys.task_record(task_id), FIRST_ATTEMPT_STARTS)
            counts += [int(value or 0) for value in pipe.execute()]
    return counts
