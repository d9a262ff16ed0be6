"""Firing a schedule: the claim on a slot, the task's record, its message and the run, at once.

A slot's fire is one MULTI/EXEC on taskrelay's transport: the Celery message (built
by Celery's ``send_task`` on the publish-only app, queued by kombu's publish batch,
``tasks/celery_ext/atomic_publish.py``), the task's record, the claim that moves
the schedule past the slot, the run entry, the next due time and the counters. The
transaction WATCHes the schedule and its claim, and before it runs re-reads them
(and the lease) on the watched connection: if another scheduler claimed the slot,
the schedule changed, or this scheduler lost the lease, nothing at all is sent. A
scheduler killed mid-fire leaves either all of it or none; a paused one that wakes
finds the claim moved on. The task id is derived from (schedule, slot), so even a
fire whose reply was lost names the same task when it is looked at again. Several
slots (of different schedules) may go in one transaction: all of them or none.

On another broker the claim and the record commit first and the message follows:
a scheduler killed between the two loses that slot (at most once, never twice).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis
from celery import Celery

from tasks import keys, records
from tasks.celery_ext import atomic_publish
from tasks.errors import TaskrelayError
from tasks.schedules import metrics
from tasks.schedules.model import Schedule
from tasks.schedules.store import RUNS_KEPT, epoch
from tasks.text import as_text

logger = logging.getLogger(__name__)

# The namespace of task ids derived from (schedule, slot) (uuid5 of the two).
_SLOT_NAMESPACE = uuid.UUID("4f6b0e52-5c4e-4a57-9d55-5b0f0d1c7a11")
SCHEDULED = "schedule"
MANUAL = "manual"
# KEYS: each schedule and its claim, then the lease; what the guard compares with
# what was read: each schedule's updated_at and claim, then the lease's holder.
_GUARD = """
local found = {}
for i = 1, #KEYS - 1, 2 do
    found[#found + 1] = redis.call('HGET', KEYS[i], 'updated_at') or false
    found[#found + 1] = redis.call('GET', KEYS[i + 1]) or false
end
found[#found + 1] = redis.call('GET', KEYS[#KEYS]) or false
return found
"""


# Why a fire was refused: another scheduler claimed the slot, this one lost the
# lease, or the schedule was changed or deleted (all read again on the next turn).
CLAIMED = "claimed"
LEASE_LOST = "lease lost"
CHANGED = "changed"


class Stale(TaskrelayError):
    """The schedule, its claim or the lease changed since they were read; nothing was sent."""

    def __init__(self, message: str, *, reason: str = CHANGED) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Publisher:
    """What a fire writes to: the Redis of records and schedules, and the publish-only app."""

    redis: redis.Redis
    celery: Celery
    # The record, the claim and the message go in one MULTI/EXEC: the broker is
    # taskrelay's transport on the very Redis that holds the schedules.
    atomic: bool


def publisher(client: redis.Redis, celery: Celery, redis_url: str) -> Publisher:
    atomic = atomic_publish.lends_transactions(celery) and celery.conf.broker_url == redis_url
    return Publisher(client, celery, atomic)


@dataclass(frozen=True)
class Seen:
    """What the scheduler read before deciding to fire: fired only if still so."""

    updated_at: str
    claim: str | None
    holder: str


@dataclass(frozen=True)
class Run:
    """One fire of a schedule, as its runs list keeps it."""

    task_id: str
    trigger: str
    slot: str | None
    fired_at: str
    lag_s: float | None
    scheduler: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def encoded(self) -> str:
        return json.dumps(self.as_json(), separators=(",", ":"))


# A task to send: its schedule, its run, and what was read before, to check (None: by hand).
Fire = tuple[Schedule, Run, Seen | None]


def slot_task_id(schedule_id: str, slot: datetime) -> str:
    """The task id of a slot's fire: the same however often the fire is tried."""
    return str(uuid.uuid5(_SLOT_NAMESPACE, f"{schedule_id}@{slot.isoformat()}"))


@dataclass(frozen=True)
class Due:
    """A slot the scheduler decided to fire, from what it read (`seen`)."""

    schedule: Schedule
    slot: datetime
    seen: Seen
    # Slots passed over with this fire (misfires), counted when it commits.
    missed: int = 0


def fire_slots(publisher: Publisher, due: Sequence[Due], *, now: datetime) -> list[Run]:
    """Fire slots through their claims in one transaction: all of them, or none (Stale)
    when anything changed since it was read."""
    fires = [(d.schedule, _slot_run(d, now), d.seen) for d in due]
    lags = [run.lag_s or 0.0 for _, run, _ in fires]

    def commands(pipe: Any) -> None:
        for (schedule, run, _), d in zip(fires, due, strict=True):
            _record_and_run(pipe, schedule, run, now)
            _claim(pipe, schedule, d.slot)
        metrics.count(pipe, metrics.FIRED, len(fires))
        metrics.count(pipe, metrics.MISSED, sum(d.missed for d in due))
        metrics.lags(pipe, lags)

    _commit(publisher, fires, commands)
    return [run for _, run, _ in fires]


def fire_slot(
    publisher: Publisher,
    schedule: Schedule,
    slot: datetime,
    *,
    seen: Seen,
    missed: int,
    now: datetime,
) -> Run:
    """Fire one slot through its claim; Stale (nothing sent) if anything changed since `seen`."""
    [run] = fire_slots(publisher, [Due(schedule, slot, seen, missed)], now=now)
    return run


def pass_over(
    client: redis.Redis, schedule: Schedule, slot: datetime, *, seen: Seen, missed: int
) -> None:
    """Move the claim to `slot` without firing (missed slots under ``skip``, a task
    that cannot be sent); Stale if anything changed since `seen`."""
    with client.pipeline() as pipe:
        _watch_and_check(pipe, [(schedule, seen)])
        pipe.multi()
        _claim(pipe, schedule, slot)
        metrics.count(pipe, metrics.MISSED, missed)
        try:
            pipe.execute()
        except redis.WatchError:
            raise Stale(f"{schedule.name} changed while passing over") from None


def fire_now(publisher: Publisher, schedule: Schedule, *, now: datetime) -> Run:
    """Run the schedule's task at once, asked for by hand: no slot, no claim."""
    run = Run(
        task_id=str(uuid.uuid4()),
        trigger=MANUAL,
        slot=None,
        fired_at=now.isoformat(),
        lag_s=None,
        scheduler=None,
    )

    def commands(pipe: Any) -> None:
        _record_and_run(pipe, schedule, run, now)
        metrics.count(pipe, metrics.MANUAL)

    _commit(publisher, [(schedule, run, None)], commands)
    return run


def _slot_run(due: Due, now: datetime) -> Run:
    return Run(
        task_id=slot_task_id(due.schedule.id, due.slot),
        trigger=SCHEDULED,
        slot=due.slot.isoformat(),
        fired_at=now.isoformat(),
        lag_s=round(max(0.0, (now - due.slot).total_seconds()), 3),
        scheduler=due.seen.holder,
    )


def _commit(publisher: Publisher, fires: Sequence[Fire], commands: Callable[[Any], None]) -> None:
    guarded = [(schedule, seen) for schedule, _, seen in fires if seen is not None]
    if not publisher.atomic:
        _commit_then_send(publisher, fires, commands, guarded)
        return
    try:
        with (
            publisher.celery.producer_or_acquire() as producer,
            atomic_publish.transaction(producer) as transaction,
        ):
            for schedule, run, _ in fires:
                _send(publisher.celery, schedule, run, producer)
            pipe = transaction.pipeline()
            if pipe is None:
                raise RuntimeError("the broker transport lent no transaction to publish in")
            commands(pipe)
            if guarded:
                # After the commands are queued: WATCH runs at once, the rest waits for EXEC.
                _watch_and_check(pipe, guarded)
    except redis.WatchError:
        raise Stale("a schedule changed while firing; nothing was sent") from None


def _commit_then_send(
    publisher: Publisher,
    fires: Sequence[Fire],
    commands: Callable[[Any], None],
    guarded: list[tuple[Schedule, Seen]],
) -> None:
    with publisher.redis.pipeline() as pipe:
        if guarded:
            _watch_and_check(pipe, guarded)
        pipe.multi()
        commands(pipe)
        try:
            pipe.execute()
        except redis.WatchError:
            raise Stale("a schedule changed while firing; nothing was sent") from None
    for schedule, run, _ in fires:
        try:
            _send(publisher.celery, schedule, run, None)
        except Exception:
            logger.exception("the message of %s (%s) was not sent", schedule.name, run.slot)
            records.forget_submission(publisher.redis, run.task_id)
            raise


def _watch_and_check(pipe: Any, guarded: Sequence[tuple[Schedule, Seen]]) -> None:
    """WATCH each schedule and its claim, then check them and the lease against what was seen."""
    names = [name for schedule, _ in guarded for name in _guarded_keys(schedule)]
    pipe.watch(*names)
    replies = [
        None if value is None else as_text(value)
        for value in pipe.eval(_GUARD, len(names) + 1, *names, keys.SCHEDULER_LEASE)
    ]
    holder = replies[-1]
    for index, (schedule, seen) in enumerate(guarded):
        updated_at, claimed = replies[2 * index], replies[2 * index + 1]
        if claimed != seen.claim:
            raise Stale(f"{schedule.name}: another scheduler claimed the slot", reason=CLAIMED)
        if holder != seen.holder:
            raise Stale(
                f"{schedule.name}: this scheduler no longer holds the lease", reason=LEASE_LOST
            )
        if updated_at != seen.updated_at:
            raise Stale(f"{schedule.name}: the schedule changed or was deleted")


def _guarded_keys(schedule: Schedule) -> tuple[str, str]:
    return keys.schedule(schedule.id), keys.schedule_claim(schedule.id)


def _record_and_run(pipe: Any, schedule: Schedule, run: Run, now: datetime) -> None:
    extra = {"schedule": schedule.id}
    if run.slot is not None:
        extra["slot"] = run.slot
    records.save_submission(
        pipe,
        run.task_id,
        task=schedule.task,
        args=schedule.args,
        kwargs=schedule.kwargs,
        submitted_at=run.fired_at,
        extra=extra,
    )
    runs_key = keys.schedule_runs(schedule.id)
    pipe.zadd(runs_key, {run.encoded(): epoch(now)})
    pipe.zremrangebyrank(runs_key, 0, -RUNS_KEPT - 1)


def _claim(pipe: Any, schedule: Schedule, slot: datetime) -> None:
    """Move the schedule past `slot`, and index its next slot (none: it has ended)."""
    pipe.set(keys.schedule_claim(schedule.id), repr(epoch(slot)))
    upcoming = schedule.window().after(slot)
    if upcoming is None:
        pipe.zrem(keys.SCHEDULES_DUE, schedule.id)
    else:
        pipe.zadd(keys.SCHEDULES_DUE, {schedule.id: epoch(upcoming)})


def _send(celery: Celery, schedule: Schedule, run: Run, producer: Any) -> None:
    spec = schedule.spec()
    celery.send_task(
        spec.celery_name,
        kwargs=schedule.call(),
        task_id=run.task_id,
        queue=spec.queue,
        retry=True,
        producer=producer,
    )
