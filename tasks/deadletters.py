"""Dead letters: tasks that ended in FAILURE, kept for inspection, replay or discard."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis

from tasks import defaults, keys
from tasks.text import as_text


def add_commands(task_id: str, entry: dict[str, Any]) -> list[list[str]]:
    """The commands that store a dead letter and flag the task's record."""
    now = datetime.now(UTC).timestamp()
    return [
        [
            "SET",
            keys.dead_letter(task_id),
            json.dumps(entry),
            "EX",
            str(defaults.TASK_RECORD_TTL_S),
        ],
        ["ZADD", keys.DEAD_LETTER_INDEX, repr(now), task_id],
        [
            "ZREMRANGEBYRANK",
            keys.DEAD_LETTER_INDEX,
            "0",
            str(-defaults.DEAD_LETTER_MAX_ENTRIES - 1),
        ],
        ["HSET", keys.task_record(task_id), "dead_letter", "1"],
    ]


def get(client: redis.Redis, task_id: str) -> dict[str, Any] | None:
    raw = client.get(keys.dead_letter(task_id))
    return json.loads(raw) if raw is not None else None


def newest(client: redis.Redis, limit: int) -> list[dict[str, Any]]:
    task_ids = client.zrevrange(keys.DEAD_LETTER_INDEX, 0, limit - 1)
    if not task_ids:
        return []
    raws = client.mget([keys.dead_letter(as_text(t)) for t in task_ids])
    return [json.loads(raw) for raw in raws if raw is not None]


def discard(client: redis.Redis, task_id: str) -> bool:
    """Remove a dead letter; return False if there was none."""
    with client.pipeline() as pipe:
        pipe.delete(keys.dead_letter(task_id))
        pipe.zrem(keys.DEAD_LETTER_INDEX, task_id)
        deleted, _ = pipe.execute()
    return bool(deleted)
