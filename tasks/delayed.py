"""The cap on countdown/eta tasks: each one waits in a worker's memory until it is due.

Celery hands a delayed message to a worker at once, and the worker keeps it in
memory (and unacknowledged) until its time comes: thousands of far-future
countdowns cost every worker megabytes. The web counts the delayed tasks it
accepted in one sorted set scored by due time and refuses new ones past a limit.
A task leaves the set when it starts or is revoked; an entry past its due time is
trimmed at the next claim, so a lost removal never holds a slot for long.
"""

from __future__ import annotations

import redis

from tasks import keys

# KEYS[1]: the delayed set. ARGV: task id, due time (epoch s), now (epoch s), limit.
# Returns 1 if the task was counted, 0 if the limit is reached.
_CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""


def claim(client: redis.Redis, task_id: str, due_s: float, now_s: float, limit: int) -> bool:
    """Count a delayed task against `limit`; False when `limit` tasks are pending already."""
    counted = client.eval(_CLAIM, 1, keys.DELAYED_TASKS, task_id, repr(due_s), repr(now_s), limit)
    return bool(counted)


def release(client: redis.Redis, task_id: str) -> None:
    """Stop counting a task (its message was never sent)."""
    client.zrem(keys.DELAYED_TASKS, task_id)


def pending(client: redis.Redis, now_s: float) -> int:
    """How many delayed tasks are counted and not due yet."""
    return int(client.zcount(keys.DELAYED_TASKS, f"({now_s!r}", "+inf"))
