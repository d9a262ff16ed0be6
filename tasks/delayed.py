"""The cap on countdown/eta tasks: each one waits in a worker's memory until it is due.

Celery hands a delayed message to a worker at once, and the worker keeps it in
memory (and unacknowledged) until its time comes: thousands of far-future
countdowns cost every worker megabytes. The web counts the delayed tasks it
accepted in one sorted set scored by due time and refuses new ones past a limit.
A task that retries itself with a countdown waits in a worker the same way: it
is counted once its retry is sent, even past the limit (docs/decisions.md).
A task leaves the set when it starts or is revoked; an entry past its due time is
trimmed at the next claim, so a lost removal never holds a slot for long.
"""

from __future__ import annotations

import logging

import redis

from tasks import keys

logger = logging.getLogger(__name__)

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


def count_sent(client: redis.Redis, task_id: str, due_s: float) -> None:
    """Count a task whose delayed message is sent already (a retry), whatever the limit.

    Best effort: the message is on its way whatever happens here, and an entry
    missed only undercounts until the task starts.
    """
    try:
        client.zadd(keys.DELAYED_TASKS, {task_id: due_s})
    except redis.RedisError:
        logger.warning("could not count the delayed retry of task %s", task_id, exc_info=True)


def release(client: redis.Redis, task_id: str) -> None:
    """Stop counting a task (its message was never sent)."""
    client.zrem(keys.DELAYED_TASKS, task_id)


def pending(client: redis.Redis, now_s: float) -> int:
    """How many delayed tasks are counted and not due yet."""
    return int(client.zcount(keys.DELAYED_TASKS, f"({now_s!r}", "+inf"))
