"""Notes the moment each task's SUCCESS is published, on a thread of its own.

SUCCESS is published by the result backend when it stores it, and that is what
a client following ``GET /api/tasks/<id>/events`` is woken by.
"""

from __future__ import annotations

import json
import threading
import time

import redis

from tasks import keys

READ_TIMEOUT_S = 0.2
JOIN_TIMEOUT_S = 5.0


class SuccessWatcher:
    """Wall-clock time (``time.time()``) at which each task's SUCCESS was seen, by id."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]
        self.pubsub.psubscribe(keys.CELERY_RESULT_PREFIX + "*")
        self.seen: dict[str, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        while not self.stopping.is_set():
            message = self.pubsub.get_message(timeout=READ_TIMEOUT_S)
            if message is None:
                continue
            meta = json.loads(message["data"])
            if meta.get("status") == "SUCCESS":
                self.seen[meta["task_id"]] = time.time()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=JOIN_TIMEOUT_S)
        self.pubsub.close()
