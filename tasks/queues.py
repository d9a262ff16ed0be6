"""taskrelay's queues: their names, and where kombu's Redis transport keeps them."""

from __future__ import annotations

from kombu.transport.redis import Channel as RedisChannel

# Slow work never delays pub/sub delivery: the relay task has its own queue.
TASK_QUEUE = "tasks"
RELAY_QUEUE = "relay"
QUEUES = (TASK_QUEUE, RELAY_QUEUE)


def redis_lists(queue: str) -> list[str]:
    """The Redis lists that hold a queue: kombu keeps one per priority step.

    The steps and the separator are kombu's own class attributes, so the names
    follow kombu rather than a copy of its constants.
    """
    return [
        queue if step == 0 else f"{queue}{RedisChannel.sep}{step}"
        for step in RedisChannel.priority_steps
    ]
