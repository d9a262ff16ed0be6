"""Schedules: many interval schedules firing every second, fired by a real scheduler.

The system is what ``taskrelay up`` starts (topologies.py): its scheduler fires,
its task workers run the fired ``noop`` tasks. The schedules are written with the
schedules package's own functions (``model.new_schedule``, ``store.create``), all
starting on one whole second a little ahead, so that writing them is not measured,
and ending ``duration_s`` later. Every slot the package says a schedule has in that
window (``Schedule.window()``) is expected once in the schedule's runs (the list the
scheduler records with each fire, ``keys.schedule_runs``): a slot with no run is
missed, a slot with two is a duplicate. The fire lag is a run's ``fired_at`` minus
its slot. Then every fired task is read until it has succeeded.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from taskrelay.bench import cpu
from taskrelay.bench.errors import BenchError
from taskrelay.bench.results import Row, Section
from taskrelay.bench.stack import READY_TIMEOUT_S, Stack, wait_until
from taskrelay.bench.stats import ms, percentile, rate
from taskrelay.bench.topologies import System, process_ids, start_taskrelay_up
from tasks import keys, records, task_modules
from tasks.app_factory import create_celery_app
from tasks.schedules import lease, model, store
from tasks.schedules.model import Schedule
from tasks.text import as_text

TASK = "noop"
EVERY_S = 1
# The first slot is this far past the last schedule written, so none is late
# because the bench was still writing; plus this much per schedule written, in seconds.
LEAD_S = 3.0
LEAD_PER_SCHEDULE_S = 0.002
# After the last slot, how long the scheduler may take to fire it, in seconds: past
# the scheduler's misfire grace (60 s by default) a late slot is a misfire anyway.
FIRE_SETTLE_S = 90.0
FIRED_POLL_S = 0.5
# The workers may run behind the scheduler: they get this long after the last slot
# plus this long per fired task, in seconds.
RUN_SETTLE_S = 60.0
RUN_SETTLE_PER_TASK_S = 0.01
RECORDS_BATCH = 1000
# The target for the fire lag's p99, in ms.
TARGET_P99_MS = 1000.0
SUBJECT = "taskrelay scheduler (taskrelay up)"


@dataclass(frozen=True)
class SchedulesLoad:
    schedules: int
    duration_s: float
    workers: int  # taskrelay up --concurrency

    def describe(self) -> str:
        return (
            f"schedules, {self.schedules} every {EVERY_S} s for {self.duration_s:g} s"
            f" ({self.workers} task workers)"
        )


@dataclass(frozen=True)
class Tally:
    """What the runs lists hold, against the slots expected."""

    expected: int
    fired: int
    duplicates: int
    missed: int
    lags_s: list[float]
    task_ids: list[str]
    first_fire: float
    last_fire: float


def run(stack: Stack, load: SchedulesLoad) -> Section:
    section = Section("schedules", f"schedules: {load.schedules} firing every {EVERY_S} s")
    stack.flush()
    system = start_taskrelay_up(stack, workers=load.workers, flower=False)
    try:
        client = system.client()
        try:
            _wait_for_active_scheduler(stack, system, client)
            section.rows.append(_measure(stack, system, client, load))
        finally:
            client.close()
    finally:
        system.stop(stack)
    for row in section.rows:
        section.notes.append(", ".join(f"{name} {value:,}" for name, value in row.counts.items()))
    section.notes.append(
        f"p50/p99: fire lag (fired_at minus slot), target p99 <= {TARGET_P99_MS:g} ms;"
        " loss: missed slots / slots expected"
    )
    return section


def _wait_for_active_scheduler(stack: Stack, system: System, client: redis.Redis) -> None:
    def active() -> bool:
        system.check_alive(stack)
        return lease.holder(client) is not None

    wait_until(active, timeout_s=READY_TIMEOUT_S, what="the scheduler to hold the lease")


def _measure(stack: Stack, system: System, client: redis.Redis, load: SchedulesLoad) -> Row:
    _load_registry(system.redis_url)
    cpu_before = cpu.snapshot(process_ids(system))
    schedules = _create(client, load)
    start = min(s.start_at for s in schedules if s.start_at is not None)
    end = max(s.end_at for s in schedules if s.end_at is not None)
    expected = {s.id: _slots(s) for s in schedules}
    total = sum(len(slots) for slots in expected.values())
    wait_s = max(0.0, end.timestamp() - time.time()) + FIRE_SETTLE_S

    deadline = time.monotonic() + wait_s
    # A slot still unfired past the deadline is counted missed, not waited for.
    while _run_count(client, schedules) < total and time.monotonic() < deadline:
        system.check_alive(stack)
        time.sleep(FIRED_POLL_S)
    tally = _tally(client, expected)
    succeeded = _wait_succeeded(stack, system, client, tally.task_ids)
    spent = cpu.per_task_ms(cpu_before, cpu.snapshot(process_ids(system)), max(1, tally.fired))
    system.check_alive(stack)
    return Row(
        SUBJECT,
        rate(tally.fired, tally.last_fire - tally.first_fire + EVERY_S),
        "fires/s",
        ms(percentile(tally.lags_s, 0.5)),
        ms(percentile(tally.lags_s, 0.99)),
        loss=tally.missed / tally.expected if tally.expected else None,
        cpu_ms_per_task=spent,
        note=f"{len(schedules)} schedules from {start:%H:%M:%S} UTC, {load.workers} task workers",
        counts={
            "slots_expected": tally.expected,
            "fired": tally.fired,
            "duplicates": tally.duplicates,
            "missed": tally.missed,
            "tasks_succeeded": succeeded,
            "max_lag_ms": round(max(tally.lags_s, default=0.0) * 1000),
        },
    )


def _load_registry(redis_url: str) -> None:
    """The registry a schedule's task is checked against: the workers' task modules."""
    app = create_celery_app(redis_url)
    try:
        task_modules.load_configured(app.conf)
    finally:
        app.close()


def _create(client: redis.Redis, load: SchedulesLoad) -> list[Schedule]:
    now = datetime.now(UTC)
    lead = LEAD_S + LEAD_PER_SCHEDULE_S * load.schedules
    start = datetime.fromtimestamp(math.ceil(now.timestamp() + lead), UTC)
    end = start + timedelta(seconds=load.duration_s)
    created = []
    for number in range(load.schedules):
        body: dict[str, Any] = {
            "name": f"bench-{number}",
            "task": TASK,
            "every_s": EVERY_S,
            "start_at": start.isoformat(),
            "end_at": end.isoformat(),
        }
        schedule = model.new_schedule(body, now=datetime.now(UTC))
        store.create(client, schedule)
        created.append(schedule)
    if datetime.now(UTC) >= start:
        raise BenchError(
            f"writing {load.schedules} schedules took past their first slot; raise LEAD_S"
        )
    return created


def _slots(schedule: Schedule) -> list[datetime]:
    """Every slot of the schedule, as the package computes them, from its creation on."""
    found = []
    window = schedule.window()
    slot = window.after(schedule.created_at)
    while slot is not None:
        found.append(slot)
        slot = window.after(slot)
    return found


def _run_count(client: redis.Redis, schedules: list[Schedule]) -> int:
    with client.pipeline(transaction=False) as pipe:
        for schedule in schedules:
            pipe.zcard(keys.schedule_runs(schedule.id))
        return sum(pipe.execute())


def _tally(client: redis.Redis, expected: dict[str, list[datetime]]) -> Tally:
    ids = list(expected)
    with client.pipeline(transaction=False) as pipe:
        for schedule_id in ids:
            pipe.zrange(keys.schedule_runs(schedule_id), 0, -1)
        replies = pipe.execute()
    duplicates = missed = fired = 0
    lags: list[float] = []
    task_ids: list[str] = []
    fire_times: list[float] = []
    for schedule_id, raw in zip(ids, replies, strict=True):
        runs = store.decode_runs(raw)
        fired += len(runs)
        per_slot = Counter(datetime.fromisoformat(r["slot"]) for r in runs if r["slot"])
        duplicates += sum(count - 1 for count in per_slot.values())
        missed += sum(1 for slot in expected[schedule_id] if slot not in per_slot)
        for entry in runs:
            fired_at = datetime.fromisoformat(entry["fired_at"])
            lags.append((fired_at - datetime.fromisoformat(entry["slot"])).total_seconds())
            fire_times.append(fired_at.timestamp())
            task_ids.append(entry["task_id"])
    return Tally(
        expected=sum(len(slots) for slots in expected.values()),
        fired=fired,
        duplicates=duplicates,
        missed=missed,
        lags_s=lags,
        task_ids=task_ids,
        first_fire=min(fire_times, default=0.0),
        last_fire=max(fire_times, default=0.0),
    )


def _wait_succeeded(stack: Stack, system: System, client: redis.Redis, task_ids: list[str]) -> int:
    """Until every fired task has finished; how many of them succeeded."""
    pending = list(task_ids)
    succeeded = 0
    deadline = time.monotonic() + RUN_SETTLE_S + RUN_SETTLE_PER_TASK_S * len(task_ids)
    while pending:
        system.check_alive(stack)
        still = []
        for start in range(0, len(pending), RECORDS_BATCH):
            batch = pending[start : start + RECORDS_BATCH]
            with client.pipeline(transaction=False) as pipe:
                for task_id in batch:
                    pipe.hget(keys.task_record(task_id), "state")
                states = pipe.execute()
            for task_id, raw in zip(batch, states, strict=True):
                state = None if raw is None else as_text(raw)
                if state == records.SUCCESS:
                    succeeded += 1
                elif state not in records.TERMINAL_STATES:
                    still.append(task_id)
        pending = still
        if pending and time.monotonic() > deadline:
            raise BenchError(f"{len(pending)} fired tasks never finished")
        if pending:
            time.sleep(0.5)
    return succeeded
