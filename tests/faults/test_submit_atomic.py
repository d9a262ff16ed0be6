"""A web process killed mid-POST never leaves a task's record without its message.

On taskrelay's Redis transport the record and the message commit in one MULTI/EXEC
(tasks/celery_ext/atomic_publish.py). Here gunicorn workers are SIGKILLed again and
again while clients submit, with no task worker draining the queue, and afterwards
every record in Redis must have its message on the queue and every message a record.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import keys
from tasks.queues import TASK_QUEUE, redis_lists
from tests.support import start_web, stop

pytestmark = pytest.mark.slow

CLIENTS = 6
LOAD_S = 8.0
KILL_EVERY_S = 0.8


def _submit_until(base_url: str, deadline: float, accepted: list[str]) -> None:
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                reply = client.post("/api/tasks", json={"task": "consume", "args": [1]})
            except httpx.HTTPError:
                continue  # the worker serving this connection was killed
            if reply.status_code == 202:
                accepted.append(reply.json()["id"])


def _kill_workers_until(master_pid: int, deadline: float) -> int:
    kills = 0
    while time.monotonic() < deadline:
        workers = psutil.Process(master_pid).children()
        if workers:
            os.kill(workers[kills % len(workers)].pid, signal.SIGKILL)
            kills += 1
        time.sleep(KILL_EVERY_S)
    return kills


def _queued_ids(client: redis.Redis) -> set[str]:
    messages = [raw for name in redis_lists(TASK_QUEUE) for raw in client.lrange(name, 0, -1)]
    return {json.loads(raw)["headers"]["id"] for raw in messages}


def test_killing_web_workers_mid_post_leaves_no_record_without_its_message(
    fault_redis: EmbeddedRedis, fault_redis_client: redis.Redis, log_dir: Path
) -> None:
    web, base_url = start_web(fault_redis.url, log_dir)
    try:
        deadline = time.monotonic() + LOAD_S
        accepted: list[str] = []
        clients = [
            threading.Thread(target=_submit_until, args=(base_url, deadline, accepted))
            for _ in range(CLIENTS)
        ]
        for thread in clients:
            thread.start()
        kills = _kill_workers_until(web.process.pid, deadline)
        for thread in clients:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in clients)
    finally:
        stop(web)

    recorded = {
        task_id
        for task_id in fault_redis_client.zrange(keys.TASK_INDEX, 0, -1)
        if fault_redis_client.exists(keys.task_record(task_id))
    }
    queued = _queued_ids(fault_redis_client)
    assert kills >= 6
    assert len(accepted) > 50, "the load never got going"
    assert set(accepted) <= recorded
    assert recorded - queued == set(), "records whose message was never sent"
    assert queued - recorded == set(), "messages sent without their record"
