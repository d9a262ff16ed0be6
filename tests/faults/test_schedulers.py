"""Schedulers that die: every slot fires once, none is lost, a standby takes over within the bound.

Real scheduler processes (``python -m tasks.schedules``, as `taskrelay up` and compose
run them), a real worker running what they fire, and a Redis of the test's own that
a test may restart. The lease is short here so that takeovers happen in seconds.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from taskrelay import roles
from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child
from tasks import keys, task_modules
from tasks.app_factory import create_celery_app
from tasks.queues import TASK_QUEUE
from tasks.schedules import fire, lease, store
from tasks.schedules.model import Schedule, new_schedule, patched
from tasks.schedules.scheduler import Scheduler, Settings
from tests.faults.conftest import WorkerFactory
from tests.support import log_tail, stop, wait_until

pytestmark = pytest.mark.slow

# The test's lease, in seconds: a standby takes over within TAKEOVER_BOUND_S of the
# active scheduler's death (the default lease is 6 s, a 7 s bound).
SCHEDULER_LEASE_S = 2.0
TAKEOVER_BOUND_S = Settings(lease_s=SCHEDULER_LEASE_S).takeover_bound_s
# After the lease passes, the new active one fires at its next turn (on a busy machine,
# within a second).
FIRE_AFTER_TAKEOVER_S = 1.0
# Schedules firing every second, side by side: a few hundred fires in half a minute.
SCHEDULES = 10
# How long each phase lets the schedules fire, in seconds.
PHASE_S = 6.0


@dataclass
class Schedulers:
    redis_url: str
    log_dir: Path
    started: list[Child]

    def start(self, name: str, env: dict[str, str] | None = None) -> Child:
        child = Child(
            name,
            roles.scheduler_argv(),
            self.log_dir / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log",
            {
                "REDIS_URL": self.redis_url,
                "PYTHONUNBUFFERED": "1",
                "TASKRELAY_SCHEDULER_LEASE_S": str(SCHEDULER_LEASE_S),
                **(env or {}),
            },
        )
        child.start()
        self.started.append(child)
        return child

    def by_id(self, scheduler_id: str | None) -> Child | None:
        """The scheduler process whose id (host:pid:random) this is."""
        if scheduler_id is None:
            return None
        pid = int(scheduler_id.split(":")[1])
        return next((c for c in self.started if c.process and c.process.pid == pid), None)


@pytest.fixture
def schedulers(fault_redis: EmbeddedRedis, log_dir: Path) -> Iterator[Schedulers]:
    running = Schedulers(fault_redis.url, log_dir, [])
    yield running
    for child in running.started:
        if child.process is not None and child.exit_code() is None:
            os.kill(child.process.pid, signal.SIGCONT)  # a paused one must hear SIGTERM
        stop(child)


def make_schedules(client: FlaskClient, count: int) -> list[str]:
    ids = []
    for number in range(count):
        response = client.post(
            "/api/schedules", json={"name": f"tick-{number}", "task": "noop", "every_s": 1}
        )
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


def all_runs(client: redis.Redis, schedule_ids: list[str]) -> list[dict[str, Any]]:
    """Every run each schedule remembers, with the schedule's id."""
    return [
        {**run, "schedule": schedule_id}
        for schedule_id in schedule_ids
        for run in store.runs(client, schedule_id, store.RUNS_KEPT)
    ]


def fired_after(runs: list[dict[str, Any]], moment: float) -> list[dict[str, Any]]:
    return [r for r in runs if datetime.fromisoformat(r["fired_at"]).timestamp() > moment]


def active(schedulers: Schedulers, client: redis.Redis) -> Child:
    def found() -> Child | None:
        return schedulers.by_id(lease.holder(client))

    return wait_until(found, timeout_s=30, what="a scheduler to hold the lease")


def pid_of(child: Child) -> int:
    assert child.process is not None
    return child.process.pid


def takeover_s(client: redis.Redis, schedule_ids: list[str], by: Child, since: float) -> float:
    """Seconds from `since` until the first fire by `by`."""

    def first() -> float | None:
        mine = [
            r
            for r in fired_after(all_runs(client, schedule_ids), since)
            if r["scheduler"].split(":")[1] == str(pid_of(by))
        ]
        times = [datetime.fromisoformat(r["fired_at"]).timestamp() for r in mine]
        return min(times) - since if times else None

    return wait_until(first, timeout_s=30, interval_s=0.1, what=f"{by.name} to fire")


def let_fire(client: redis.Redis, schedule_ids: list[str], seconds: float) -> None:
    """Wait until every schedule fired `seconds` worth of slots from now."""
    since = time.time()
    wanted = int(seconds) * len(schedule_ids)
    wait_until(
        lambda: len(fired_after(all_runs(client, schedule_ids), since)) >= wanted,
        timeout_s=seconds + 30,
        interval_s=0.2,
        what=f"{wanted} fires",
    )


def assert_each_slot_fired_once_and_none_lost(
    client: redis.Redis, runs: list[dict[str, Any]]
) -> None:
    """Per schedule: no slot twice, and every slot from its first on to the last fired."""
    slots: dict[str, list[datetime]] = {}
    for run in runs:
        slots.setdefault(run["schedule"], []).append(datetime.fromisoformat(run["slot"]))
    for schedule_id, fired in slots.items():
        ordered = sorted(fired)
        assert len(ordered) == len(set(ordered)), f"{schedule_id}: a slot fired twice"
        schedule = store.get(client, schedule_id)
        assert schedule is not None
        assert ordered[0] == schedule.window().after(schedule.created_at), "first slot lost"
        gaps = [b - a for a, b in pairwise(ordered)]
        assert set(gaps) <= {timedelta(seconds=1)}, f"{schedule_id}: slots lost: {gaps}"


def wait_succeeded(
    client: redis.Redis, runs: list[dict[str, Any]], *, delivered_once: bool = True
) -> None:
    """Every fired task succeeded; with `delivered_once`, its message reached a worker once.

    A Redis restart may hand a worker's message back to the queue (the worker's
    acknowledgement was lost), which runs the task again: that is the broker's
    at-least-once delivery, not a second fire, so it is not checked there. Fires are
    counted by the runs, which commit with their messages.
    """

    def all_done() -> bool:
        with client.pipeline(transaction=False) as pipe:
            for run in runs:
                pipe.hget(keys.task_record(run["task_id"]), "state")
            return all(state == "SUCCESS" for state in pipe.execute())

    wait_until(all_done, timeout_s=60, interval_s=0.2, what="every fired task to succeed")
    if not delivered_once:
        return
    with client.pipeline(transaction=False) as pipe:
        for run in runs:
            pipe.hget(keys.task_record(run["task_id"]), "deliveries:0")
        deliveries = pipe.execute()
    assert set(deliveries) == {"1"}, "a fired task was delivered more than once"
    assert client.llen(TASK_QUEUE) == 0


def test_schedulers_sigkilled_and_sigstopped_fire_every_slot_once_and_take_over_in_bound(
    fault_client: FlaskClient,
    fault_redis_client: redis.Redis,
    fault_worker: WorkerFactory,
    schedulers: Schedulers,
) -> None:
    fault_worker(concurrency=2)
    client = fault_redis_client
    ids = make_schedules(fault_client, SCHEDULES)
    schedulers.start("scheduler-a")
    schedulers.start("scheduler-b")
    first = active(schedulers, client)
    let_fire(client, ids, PHASE_S)

    # The active scheduler dies: the standby takes over and catches up.
    killed_at = time.time()
    os.kill(pid_of(first), signal.SIGKILL)
    second = next(c for c in schedulers.started if c is not first)
    after_kill = takeover_s(client, ids, second, killed_at)
    third = schedulers.start("scheduler-c")
    let_fire(client, ids, PHASE_S)

    # The new active one is paused: the other takes over; woken, the paused one
    # believes it is still active until its next look at the lease.
    assert schedulers.by_id(lease.holder(client)) is second
    paused_at = time.time()
    os.kill(pid_of(second), signal.SIGSTOP)
    after_pause = takeover_s(client, ids, third, paused_at)
    let_fire(client, ids, PHASE_S)
    os.kill(pid_of(second), signal.SIGCONT)
    let_fire(client, ids, PHASE_S)

    for child in (second, third):
        stop(child)
    runs = all_runs(client, ids)
    print(
        f"[measure] {len(runs)} fires of {SCHEDULES} one-second schedules; takeover after "
        f"SIGKILL {after_kill:.2f} s, after SIGSTOP {after_pause:.2f} s "
        f"(bound {TAKEOVER_BOUND_S:.2f} s with a {SCHEDULER_LEASE_S:g} s lease); "
        f"claims refused {client.hget(keys.METRICS_SCHEDULES, 'refused') or 0}"
    )
    assert len(runs) >= 4 * int(PHASE_S) * SCHEDULES  # four phases, each let fire in full
    assert_each_slot_fired_once_and_none_lost(client, runs)
    woken = [
        r
        for r in fired_after(runs, paused_at)
        if r["scheduler"].split(":")[1] == str(pid_of(second))
    ]
    assert woken == [], "the paused scheduler fired after it was paused"
    assert after_kill <= TAKEOVER_BOUND_S + FIRE_AFTER_TAKEOVER_S
    assert after_pause <= TAKEOVER_BOUND_S + FIRE_AFTER_TAKEOVER_S
    wait_succeeded(client, runs)
    for child in schedulers.started:
        if child is not first:
            assert child.exit_code() == 0, log_tail(child.log_path)


def test_a_redis_restart_keeps_schedules_and_their_runs_and_firing_resumes(
    fault_redis: EmbeddedRedis,
    fault_client: FlaskClient,
    fault_redis_client: redis.Redis,
    fault_worker: WorkerFactory,
    schedulers: Schedulers,
) -> None:
    fault_worker(concurrency=1)
    client = fault_redis_client
    ids = make_schedules(fault_client, 2)
    schedulers.start("scheduler-a")
    let_fire(client, ids, 3)
    before = all_runs(client, ids)

    restarted_at = time.time()
    fault_redis.restart()  # SIGTERM: Redis writes its append-only file and exits
    let_fire(client, ids, 4)

    assert fault_client.get(f"/api/schedules/{ids[0]}").status_code == 200
    runs = all_runs(client, ids)
    assert {r["task_id"] for r in before} <= {r["task_id"] for r in runs}
    assert_each_slot_fired_once_and_none_lost(client, runs)
    # Every fire left its task's record; what was fired after the restart runs. (A task
    # that ends just as Redis goes away is the workers' concern: tests/faults/test_redis.py.)
    with client.pipeline(transaction=False) as pipe:
        for run in runs:
            pipe.exists(keys.task_record(run["task_id"]))
        assert all(pipe.execute())
    resumed = fired_after(runs, restarted_at)
    assert resumed
    wait_succeeded(client, resumed, delivered_once=False)


@pytest.fixture
def publisher(fault_redis: EmbeddedRedis) -> Iterator[fire.Publisher]:
    celery = create_celery_app(fault_redis.url, publish_only=True)
    task_modules.load_configured(celery.conf)
    client = redis.Redis.from_url(fault_redis.url)
    yield fire.publisher(client, celery, fault_redis.url)
    celery.close()
    client.close()


def stale_fire(publisher: fire.Publisher, attempt: Callable[[], Any]) -> str:
    """Try a fire that must be refused; return why, having checked nothing was sent."""
    queued = publisher.redis.llen(TASK_QUEUE)
    with pytest.raises(fire.Stale) as refused:
        attempt()
    assert publisher.redis.llen(TASK_QUEUE) == queued
    return refused.value.reason


def test_a_scheduler_that_read_before_another_fired_or_took_the_lease_sends_nothing(
    publisher: fire.Publisher,
) -> None:
    assert publisher.atomic
    client = publisher.redis
    now = datetime.now(UTC)
    schedule = new_schedule(
        {"name": "claimed", "task": "noop", "every_s": 1}, now=now - timedelta(seconds=10)
    )
    store.create(client, schedule)
    assert lease.acquire(client, "a", ttl_s=30)
    read = fire.Seen(
        updated_at=client.hget(keys.schedule(schedule.id), "updated_at").decode(),
        claim=client.get(keys.schedule_claim(schedule.id)).decode(),
        holder="a",
    )
    slot = schedule.window().after(schedule.created_at)
    assert slot is not None
    run = fire.fire_slot(publisher, schedule, slot, seen=read, missed=0, now=now)
    assert client.llen(TASK_QUEUE) == 1
    assert run.task_id == fire.slot_task_id(schedule.id, slot)

    # A paused scheduler wakes with what it read before: the claim moved on.
    reason = stale_fire(
        publisher, lambda: fire.fire_slot(publisher, schedule, slot, seen=read, missed=0, now=now)
    )
    assert reason == fire.CLAIMED

    # Another scheduler holds the lease now.
    fresh = fire.Seen(read.updated_at, client.get(keys.schedule_claim(schedule.id)).decode(), "a")
    lease.release(client, "a")
    assert lease.acquire(client, "b", ttl_s=30)
    later = slot + timedelta(seconds=1)
    reason = stale_fire(
        publisher, lambda: fire.fire_slot(publisher, schedule, later, seen=fresh, missed=0, now=now)
    )
    assert reason == fire.LEASE_LOST

    # The schedule was changed (here: paused) since it was read.
    store.update(client, schedule, patched(schedule, {"enabled": False}, now=now))
    as_b = fire.Seen(fresh.updated_at, fresh.claim, "b")
    reason = stale_fire(
        publisher, lambda: fire.fire_slot(publisher, schedule, later, seen=as_b, missed=0, now=now)
    )
    assert reason == fire.CHANGED
    assert not client.exists(keys.task_record(fire.slot_task_id(schedule.id, later)))


def test_a_batch_with_one_stale_slot_fires_the_others_and_refuses_only_that_one(
    publisher: fire.Publisher,
) -> None:
    client = publisher.redis
    now = datetime.now(UTC)
    made = [
        new_schedule(
            {"name": f"batch-{n}", "task": "noop", "every_s": 1}, now=now - timedelta(seconds=5)
        )
        for n in range(3)
    ]
    for schedule in made:
        store.create(client, schedule)
    scheduler = Scheduler(publisher, Settings(lease_s=30), "a")
    assert lease.acquire(client, "a", ttl_s=30)

    def due(schedule: Schedule) -> fire.Due:
        seen = fire.Seen(
            client.hget(keys.schedule(schedule.id), "updated_at").decode(),
            client.get(keys.schedule_claim(schedule.id)).decode(),
            "a",
        )
        slot = schedule.window().after(schedule.created_at)
        assert slot is not None
        return fire.Due(schedule, slot, seen)

    batch = [due(schedule) for schedule in made]
    # Another scheduler fired the second schedule's slot after this one read it.
    fire.fire_slots(publisher, [batch[1]], now=now)
    assert stale_fire(publisher, lambda: fire.fire_slots(publisher, batch, now=now)) == fire.CLAIMED

    assert scheduler.fire_batch(batch, now) == 2
    assert client.llen(TASK_QUEUE) == 3  # one message per slot: two now, one before
    assert client.hget(keys.METRICS_SCHEDULES, "refused") == b"1"
    for one in batch:
        assert len(store.runs(client, one.schedule.id, 10)) == 1


def test_on_kombu_s_own_transport_the_claim_commits_first_and_each_slot_still_fires_once(
    fault_client: FlaskClient,
    fault_redis_client: redis.Redis,
    fault_worker: WorkerFactory,
    schedulers: Schedulers,
) -> None:
    # kombu's stock transport lends no transaction: claim and record, then the message.
    kombu = {"TASKRELAY_BROKER_TRANSPORT": "kombu"}
    fault_worker(concurrency=1, env=kombu)
    client = fault_redis_client
    ids = make_schedules(fault_client, 2)
    schedulers.start("scheduler-a", env=kombu)
    schedulers.start("scheduler-b", env=kombu)
    let_fire(client, ids, 3)
    for child in schedulers.started:
        stop(child)
    runs = all_runs(client, ids)
    assert_each_slot_fired_once_and_none_lost(client, runs)
    wait_succeeded(client, runs)
