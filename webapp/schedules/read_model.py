"""Schedules as the API shows them: the definition, the next fire times, runs with their states.

The next fire times start at the schedule's entry in the due index, the slot the
active scheduler fires next (possibly due already), so the document and the
scheduler agree; a paused or ended schedule has none. Times are shown in the
schedule's own zone. A run's state is its task's, read from the task records.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import url_for

from tasks import keys, records
from tasks.schedules import store
from tasks.schedules.model import Schedule
from webapp.services import Services

# Fire times each schedule's document lists.
NEXT_FIRE_TIMES = 5


def documents(services: Services, schedules: Sequence[Schedule]) -> list[dict[str, Any]]:
    """Documents of many schedules, each with its next fire times and its newest run."""
    with services.redis.pipeline(transaction=False) as pipe:
        for schedule in schedules:
            pipe.zscore(keys.SCHEDULES_DUE, schedule.id)
            pipe.zrevrange(keys.schedule_runs(schedule.id), 0, 0)
        replies = pipe.execute()
    newest = [store.decode_runs(raw) for raw in replies[1::2]]
    with_states = runs_with_states(services, [run for runs in newest for run in runs])
    by_task = {run["task_id"]: run for run in with_states}
    return [
        _document(schedule, due, by_task[runs[0]["task_id"]] if runs else None)
        for schedule, due, runs in zip(schedules, replies[::2], newest, strict=True)
    ]


def document(services: Services, schedule: Schedule) -> dict[str, Any]:
    [found] = documents(services, [schedule])
    return found


def runs_with_states(services: Services, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run with its task's state (null once the task's record expired) and a link."""
    found = records.read_raw(services.redis, services.results, [run["task_id"] for run in runs])
    shown = []
    for run, (record, raw_meta) in zip(runs, found, strict=True):
        state = records.document(run["task_id"], record, records.parse_meta(raw_meta))["state"]
        shown.append(
            {
                **run,
                "state": state if record else None,
                "links": {"task": url_for("tasks_api.get_task", task_id=run["task_id"])},
            }
        )
    return shown


def _document(
    schedule: Schedule, due: float | None, last_run: dict[str, Any] | None
) -> dict[str, Any]:
    zone = schedule.zone
    return {
        "id": schedule.id,
        "name": schedule.name,
        "task": schedule.task,
        "args": schedule.args,
        "kwargs": schedule.kwargs,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "every_s": schedule.every_s,
        "enabled": schedule.enabled,
        "start_at": _iso(schedule.start_at),
        "end_at": _iso(schedule.end_at),
        "misfire": schedule.misfire,
        "created_at": _iso(schedule.created_at),
        "updated_at": _iso(schedule.updated_at),
        "next_fire_times": [slot.astimezone(zone).isoformat() for slot in _upcoming(schedule, due)],
        "last_run": last_run,
        "links": {
            "self": url_for("schedules_api.get_schedule", ref=schedule.id),
            "runs": url_for("schedules_api.list_runs", ref=schedule.id),
            "run": url_for("schedules_api.run_schedule", ref=schedule.id),
        },
    }


def _upcoming(schedule: Schedule, due: float | None) -> list[datetime]:
    if due is None:
        return []
    first = store.instant(due)
    return [first, *schedule.window().next_times(first, NEXT_FIRE_TIMES - 1)]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
