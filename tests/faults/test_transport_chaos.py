"""A worker SIGKILLed again and again while real workers drain no-op tasks: the broker
transport loses none of them (celery/celery#7950 is the window it must not have)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time

import pytest
import redis

from taskrelay.embedded_redis import EmbeddedRedis
from tasks import keys
from tasks.app_factory import create_celery_app
from tasks.names import celery_name
from tests.faults.conftest import FAULT_VISIBILITY_TIMEOUT_S, WorkerFactory
from tests.faults.helpers import Stopwatch
from tests.support import wait_until

pytestmark = pytest.mark.slow

KILLS = 8
# Tasks sent in a burst right after each victim is up, so that it dies mid-drain.
BURST = 100
# The victim lives this long after its burst was sent, in seconds (drawn at random).
LIFE_AFTER_BURST_S = (0.0, 0.2)
# Every message a victim held comes back after the visibility timeout and a restore sweep.
RECOVERY_S = FAULT_VISIBILITY_TIMEOUT_S + 30


def send_burst(app: object, count: int) -> list[str]:
    with app.producer_or_acquire() as producer:  # type: ignore[attr-defined]
        return [
            app.send_task(celery_name("noop"), queue="tasks", producer=producer).id  # type: ignore[attr-defined]
            for _ in range(count)
        ]


def unfinished(client: redis.Redis, task_ids: list[str]) -> list[str]:
    metas = client.mget([keys.celery_result(task_id) for task_id in task_ids])
    return [
        task_id
        for task_id, meta in zip(task_ids, metas, strict=True)
        if meta is None or json.loads(meta).get("status") != "SUCCESS"
    ]


def whereabouts(client: redis.Redis, task_ids: list[str]) -> str:
    """Where unfinished tasks' messages are: on their queue, in flight, or nowhere."""
    wanted = set(task_ids)
    queued = {json.loads(raw)["headers"]["id"] for raw in client.lrange("tasks", 0, -1)}
    in_flight = {json.loads(raw)[0]["headers"]["id"] for raw in client.hvals("unacked")}
    return (
        f"{len(wanted & queued)} queued, {len(wanted & in_flight)} in flight, "
        f"{len(wanted - queued - in_flight)} nowhere; restore lock "
        f"{client.pttl('unacked_mutex')} ms to live"
    )


def starts_per_task(client: redis.Redis, task_ids: list[str]) -> list[int]:
    with client.pipeline(transaction=False) as pipe:
        for task_id in task_ids:
            pipe.hget(keys.task_record(task_id), "deliveries:0")
        return [int(found or 0) for found in pipe.execute()]


def ran_on(client: redis.Redis, task_ids: list[str], workers: list[str]) -> int:
    """How many of the tasks were last started by one of these workers."""
    with client.pipeline(transaction=False) as pipe:
        for task_id in task_ids:
            pipe.hget(keys.task_record(task_id), "worker")
        return sum(1 for worker in pipe.execute() if worker in workers)


def test_a_worker_sigkilled_over_and_over_mid_drain_loses_no_task(
    fault_redis: EmbeddedRedis,
    fault_redis_client: redis.Redis,
    fault_worker: WorkerFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    app = create_celery_app(fault_redis.url)
    clock = Stopwatch()
    fault_worker(concurrency=1)  # the survivor, draining throughout
    sent: list[str] = []
    victims: list[str] = []
    try:
        for _ in range(KILLS):
            victim = fault_worker(concurrency=1)
            sent += send_burst(app, BURST)
            time.sleep(rng.uniform(*LIFE_AFTER_BURST_S))
            assert victim.process is not None
            os.killpg(victim.process.pid, signal.SIGKILL)
            victim.process.wait(timeout=10)
            victims.append(victim.name)
        killed_at_s = clock.seconds()
        # A lost task never succeeds: wait out the recovery bound, then count.
        with contextlib.suppress(AssertionError):
            wait_until(
                lambda: not unfinished(fault_redis_client, sent),
                timeout_s=RECOVERY_S,
                interval_s=0.5,
                what="every task to succeed",
            )
        done_s = clock.seconds()
    finally:
        app.close()
    lost = unfinished(fault_redis_client, sent)
    starts = starts_per_task(fault_redis_client, sent)
    with capsys.disabled():
        print(
            f"\n[measure] {len(sent)} no-op tasks, a worker SIGKILLed {KILLS} times mid-drain "
            f"(seed {seed}, transport {os.environ.get('TASKRELAY_BROKER_TRANSPORT', 'taskrelay')}"
            f"): {len(lost)} lost; {sum(1 for n in starts if n > 1)} started more than once "
            f"(most starts {max(starts)}); {ran_on(fault_redis_client, sent, victims)} ran on a "
            f"victim; kills done at {killed_at_s} s, all settled at {done_s} s"
        )
    assert not lost, (
        f"{len(lost)} of {len(sent)} tasks never ran (seed {seed}): "
        f"{whereabouts(fault_redis_client, lost)}"
    )
    wait_until(
        lambda: fault_redis_client.hlen("unacked") == 0,
        timeout_s=RECOVERY_S,
        what="no message left in flight",
    )
