"""Schedules in Redis: written, renamed, paused and deleted whole, read by id or name.

Every write is one optimistic transaction (WATCH, then MULTI/EXEC), so a name stays
unique and a schedule never exists in part. Beside its definition each schedule has
a claim, the newest slot already fired (or passed over), which only moves forward:
the scheduler fires the slots after it (tasks/schedules/fire.py). Creating, resuming
or retiming a schedule moves the claim to the present, so that nothing from before
is caught up on. The due index holds the next slot of every enabled schedule.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from tasks import keys
from tasks.errors import TaskrelayError
from tasks.schedules.model import Schedule, timing_changed
from tasks.text import as_text

# How many runs each schedule remembers, newest kept.
RUNS_KEPT = 1000


class NameTaken(TaskrelayError):
    """Another schedule already has this name."""

    def __init__(self, name: str) -> None:
        self.field = "name"
        self.message = f"a schedule named '{name}' already exists"
        super().__init__(self.message)


class ScheduleGone(TaskrelayError):
    """The schedule was deleted while it was being changed."""


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def create(client: redis.Redis, schedule: Schedule) -> None:
    """Store a new schedule, or NameTaken; its claim starts at its creation."""

    def write(pipe: redis.client.Pipeline) -> None:
        if pipe.hexists(keys.SCHEDULE_NAMES, schedule.name):
            raise NameTaken(schedule.name)
        pipe.multi()
        pipe.hset(keys.SCHEDULE_NAMES, schedule.name, schedule.id)
        pipe.hset(keys.schedule(schedule.id), mapping=schedule.to_hash())  # type: ignore[arg-type]
        pipe.zadd(keys.SCHEDULE_INDEX, {schedule.id: epoch(schedule.created_at)})
        pipe.set(keys.schedule_claim(schedule.id), repr(epoch(schedule.created_at)))
        _index_due(pipe, schedule, schedule.created_at)

    _transaction(client, write, keys.SCHEDULE_NAMES)


def update(client: redis.Redis, old: Schedule, new: Schedule) -> None:
    """Replace a schedule's definition (same id), or NameTaken, or ScheduleGone."""
    definition, claim = keys.schedule(old.id), keys.schedule_claim(old.id)
    resumed = new.enabled and not old.enabled

    def write(pipe: redis.client.Pipeline) -> None:
        if not pipe.exists(definition):
            raise ScheduleGone(old.id)
        renamed = new.name != old.name
        if renamed and pipe.hexists(keys.SCHEDULE_NAMES, new.name):
            raise NameTaken(new.name)
        cursor = _cursor(pipe.get(claim), new.created_at)
        if resumed or timing_changed(old, new):
            # Slots of a pause, or of the timing before, are not misfires to catch up on.
            cursor = max(cursor, new.updated_at)
        pipe.multi()
        if renamed:
            pipe.hdel(keys.SCHEDULE_NAMES, old.name)
            pipe.hset(keys.SCHEDULE_NAMES, new.name, new.id)
        pipe.hset(definition, mapping=new.to_hash())  # type: ignore[arg-type]
        pipe.set(claim, repr(epoch(cursor)))
        _index_due(pipe, new, cursor)

    _transaction(client, write, keys.SCHEDULE_NAMES, definition, claim)


def delete(client: redis.Redis, schedule_id: str) -> bool:
    """Remove a schedule, its claim and its runs; False if there was none."""
    definition = keys.schedule(schedule_id)
    found: list[bool] = []

    def write(pipe: redis.client.Pipeline) -> None:
        raw = pipe.hget(definition, "name")
        found.append(raw is not None)
        if raw is None:
            return
        pipe.multi()
        pipe.hdel(keys.SCHEDULE_NAMES, json.loads(as_text(raw)))
        pipe.delete(definition, keys.schedule_claim(schedule_id), keys.schedule_runs(schedule_id))
        pipe.zrem(keys.SCHEDULE_INDEX, schedule_id)
        pipe.zrem(keys.SCHEDULES_DUE, schedule_id)

    _transaction(client, write, definition)
    return found[-1]


def get(client: redis.Redis, schedule_id: str) -> Schedule | None:
    raw = client.hgetall(keys.schedule(schedule_id))
    return _decode(raw) if raw else None


def resolve(client: redis.Redis, ref: str) -> Schedule | None:
    """A schedule by its id, or else by its name."""
    found = get(client, ref)
    if found is not None:
        return found
    schedule_id = client.hget(keys.SCHEDULE_NAMES, ref)
    return None if schedule_id is None else get(client, as_text(schedule_id))


def newest(client: redis.Redis, limit: int) -> list[Schedule]:
    """Schedules, the most recently created first."""
    ids = [as_text(i) for i in client.zrevrange(keys.SCHEDULE_INDEX, 0, limit - 1)]
    return [s for s in read_many(client, ids) if s is not None]


def read_many(client: redis.Redis, ids: list[str]) -> list[Schedule | None]:
    with client.pipeline(transaction=False) as pipe:
        for schedule_id in ids:
            pipe.hgetall(keys.schedule(schedule_id))
        replies = pipe.execute()
    return [_decode(raw) if raw else None for raw in replies]


def cursor(client: redis.Redis, schedule: Schedule) -> datetime:
    """The newest slot claimed (fired or passed over)."""
    return _cursor(client.get(keys.schedule_claim(schedule.id)), schedule.created_at)


def runs(client: redis.Redis, schedule_id: str, limit: int) -> list[dict[str, Any]]:
    """The schedule's runs, newest first, as they were recorded (tasks/schedules/fire.py)."""
    return decode_runs(client.zrevrange(keys.schedule_runs(schedule_id), 0, limit - 1))


def decode_runs(raw: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(as_text(entry)) for entry in raw]


def _decode(raw: dict[Any, Any]) -> Schedule:
    return Schedule.from_hash({as_text(k): as_text(v) for k, v in raw.items()})


def _cursor(raw: Any, fallback: datetime) -> datetime:
    return fallback if raw is None else instant(float(as_text(raw)))


def _index_due(pipe: redis.client.Pipeline, schedule: Schedule, cursor: datetime) -> None:
    """The due index: the next slot after the claim, for an enabled schedule that has one."""
    upcoming = schedule.window().after(cursor) if schedule.enabled else None
    if upcoming is None:
        pipe.zrem(keys.SCHEDULES_DUE, schedule.id)
    else:
        pipe.zadd(keys.SCHEDULES_DUE, {schedule.id: epoch(upcoming)})


def _transaction(
    client: redis.Redis, write: Callable[[redis.client.Pipeline], None], *watched: str
) -> None:
    """Run `write` under WATCH until no watched key changed in between (redis-py retries)."""
    client.transaction(write, *watched)
