"""How many messages wait in each queue, read the way kombu's Redis transport stores them."""

from __future__ import annotations

from typing import Any

QUEUES = ("tasks", "relay")
# kombu keeps one Redis list per priority step; step 0 is the queue's own name.
_PRIORITY_STEPS = (0, 3, 6, 9)
_PRIORITY_SEPARATOR = "\x06\x16"


def _lists_of(queue: str) -> list[str]:
    return [
        queue if step == 0 else f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS
    ]


def queue_depths(client: Any) -> dict[str, int]:
    with client.pipeline(transaction=False) as pipe:
        for queue in QUEUES:
            for name in _lists_of(queue):
                pipe.llen(name)
        lengths = iter(pipe.execute())
    return {queue: sum(next(lengths) for _ in _PRIORITY_STEPS) for queue in QUEUES}
