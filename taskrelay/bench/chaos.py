"""Chaos drain: no-op tasks drained while a random worker is SIGKILLed and restarted.

The same drain runs on taskrelay's transport and on kombu's stock Redis transport
(``TASKRELAY_BROKER_TRANSPORT=kombu``, read by celeryconfig.py); everything else,
the task path included, is the same. Kills start when the first task has finished
and go on while the queue holds messages; then the scenario waits for the tasks
that killed workers held, which come back after the visibility timeout, and ends
at a deadline whatever is still missing. What became of each task is counted by
census.py, independently of the transport.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, replace

import redis

import celeryconfig
from taskrelay.bench import census, commandstats, drain
from taskrelay.bench.results import Row, Section
from taskrelay.bench.stack import READY_TIMEOUT_S, Stack, wait_until
from taskrelay.bench.stats import rate
from taskrelay.bench.workers import WorkerSetup, start_worker, start_workers
from taskrelay.processes import Child
from tasks import metrics, queues
from tasks.app_factory import create_celery_app

TRANSPORTS = {
    "taskrelay transport": "taskrelay",
    "kombu's stock Redis transport": "kombu",
}
TRANSPORT_ENV = "TASKRELAY_BROKER_TRANSPORT"
NOOP = "noop"
# The same sequence of victims for both transports, and from one run to the next.
VICTIM_SEED = 6
POLL_INTERVAL_S = 0.25
# A killed worker's messages come back once a live worker's periodic restore sees
# their lease expired: at most the visibility timeout plus one restore interval
# (celeryconfig caps it at 5 s) plus this margin for a busy machine.
RESTORE_GRACE_S = 20.0


@dataclass(frozen=True)
class ChaosLoad:
    tasks: int
    workers: int
    kill_interval_s: float
    max_kills: int | None = None  # None: kill until the queue is empty

    def describe(self) -> str:
        limit = "" if self.max_kills is None else f" (kills: at most {self.max_kills})"
        return (
            f"chaos drain: {self.tasks} no-op tasks, {self.workers} workers,"
            f" one SIGKILLed every {self.kill_interval_s:g} s{limit}"
        )


class Killer:
    """The workers of one drain; kills a random one (its whole process group) and restarts it."""

    def __init__(self, stack: Stack, setup: WorkerSetup) -> None:
        self.stack = stack
        self.one = replace(setup, workers=1)
        self.victims = random.Random(VICTIM_SEED)
        self.workers: list[Child] = start_workers(stack, "chaos", setup)
        self.kills = 0

    def kill_one(self) -> None:
        victim = self.victims.choice(self.workers)
        if victim.process is not None:
            # The group: the worker's pool child dies with it, as on a lost host.
            os.killpg(victim.process.pid, signal.SIGKILL)
        self.stack.stop(victim)
        self.workers.remove(victim)
        self.kills += 1
        self.workers.append(start_worker(self.stack, "chaos", self.one))

    def check_alive(self) -> None:
        for worker in self.workers:
            self.stack.check_alive(worker)

    def stop(self) -> None:
        self.stack.stop(*self.workers)
        self.workers = []


def run(stack: Stack, load: ChaosLoad) -> Section:
    section = Section("chaos", load.describe())
    for subject, transport in TRANSPORTS.items():
        section.rows.append(drain_under_kills(stack, subject, transport, load))
    section.notes.append(
        f"visibility timeout {celeryconfig.visibility_timeout_s} s; never finished = gone"
        " (in no queue and not unacked) + still queued + still held at the deadline;"
        " run twice = started more than once (task record)"
    )
    return section


def drain_under_kills(stack: Stack, subject: str, transport: str, load: ChaosLoad) -> Row:
    stack.flush()
    client = stack.client()
    try:
        before = commandstats.snapshot(client)
        sender = create_celery_app(stack.url, result_backend="disabled", task_send_sent_event=False)
        ids = drain.enqueue(sender, drain.TASKRELAY_NOOP, queues.TASK_QUEUE, load.tasks)
        setup = WorkerSetup(workers=load.workers, env={TRANSPORT_ENV: transport})
        killer = Killer(stack, setup)
        try:
            kill_while_draining(client, killer, load)
            settled = wait_settled(client, killer, load.tasks)
            # Before the census, whose own reads are no part of the drain.
            calls = commandstats.per_task(before, commandstats.snapshot(client), load.tasks)
            counted = census.take(client, ids)
        finally:
            killer.stop()
    finally:
        client.close()
    return Row(
        subject,
        rate(counted.finished - 1, counted.span_s),
        "tasks/s",
        loss=counted.never_finished / load.tasks,
        note=(
            f"killed {killer.kills}; never finished {counted.never_finished}"
            f" ({counted.gone} gone); run twice {counted.run_twice}"
            + ("" if settled else "; deadline passed")
        ),
        calls_per_task=calls,
        counts={"kills": killer.kills, **counted.counts()},
    )


def ended(client: redis.Redis) -> int:
    """Tasks that stored their final state: each is counted once, by the script that stores it."""
    events = metrics.read(client).events
    return events.get((NOOP, metrics.SUCCEEDED), 0) + events.get((NOOP, metrics.FAILED), 0)


def queue_length(client: redis.Redis) -> int:
    with client.pipeline(transaction=False) as pipe:
        for name in queues.redis_lists(queues.TASK_QUEUE):
            pipe.llen(name)
        return sum(pipe.execute())


def kill_while_draining(client: redis.Redis, killer: Killer, load: ChaosLoad) -> None:
    """From the first finished task on, one kill every interval while the queue holds messages."""

    def started() -> bool:
        killer.check_alive()
        return ended(client) > 0

    wait_until(started, timeout_s=READY_TIMEOUT_S, what="the first task to finish")
    deadline = time.monotonic() + drain.drain_timeout_s(load.tasks)
    next_kill = time.monotonic()
    while time.monotonic() < deadline and queue_length(client) > 0:
        if load.max_kills is not None and killer.kills >= load.max_kills:
            return
        pause_s = next_kill - time.monotonic()
        if pause_s > 0:
            time.sleep(min(pause_s, load.kill_interval_s))
        killer.kill_one()
        next_kill += load.kill_interval_s


def wait_settled(client: redis.Redis, killer: Killer, tasks: int) -> bool:
    """Until every task stored its final state, or the deadline; False if it passed."""
    waiting_s = queue_length(client) / drain.SLOWEST_EXPECTED_RATE
    deadline = time.monotonic() + waiting_s + celeryconfig.visibility_timeout_s + RESTORE_GRACE_S
    while ended(client) < tasks:
        killer.check_alive()
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True
