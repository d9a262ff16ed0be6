"""How many messages wait in each queue, read where kombu's Redis transport keeps them."""

from __future__ import annotations

from typing import Any

from tasks.queues import QUEUES, redis_lists


def queue_depths(client: Any) -> dict[str, int]:
    """Messages waiting in each of taskrelay's queues, over all their priority lists."""
    lists = {queue: redis_lists(queue) for queue in QUEUES}
    with client.pipeline(transaction=False) as pipe:
        for names in lists.values():
            for name in names:
                pipe.llen(name)
        lengths = iter(pipe.execute())
    return {queue: sum(next(lengths) for _ in names) for queue, names in lists.items()}
