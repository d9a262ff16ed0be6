"""A workflow's record in Redis, and the transitions of its state.

The web writes the record (the plan, when it was submitted) with the workflow's first
steps. Each step then writes what it ended with in the result backend's script, with
its own state: its result (SUCCESS), or its id as the workflow's failed or revoked
step. Whoever runs ``advance`` next, the step's own worker right after, decides in
``settle.lua`` whether the workflow ended, and which waiting steps it must send.

Outcomes are written once: SUCCESS, FAILURE or REVOKED, whichever comes first.
Until then a workflow reads QUEUED, or RUNNING once one of its steps started.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import redis

from tasks import defaults, keys, records
from tasks.celery_ext.result_backend import Command
from tasks.text import as_text
from tasks.workflows import metrics
from tasks.workflows.plan import Plan, PlanError

RUNNING = "RUNNING"
OUTCOMES = (records.SUCCESS, records.FAILURE, records.REVOKED)
STATES = (records.QUEUED, RUNNING, *OUTCOMES)
# A workflow's keys live as long as a task's record, counted again from every step
# that returns, so a running workflow never expires under its steps.
KEEP_S = defaults.TASK_RECORD_TTL_S

_ADVANCE, _REVOKE = "advance", "revoke"
_GONE, _ENDED = "GONE", "ENDED"


@functools.cache
def _settle_source() -> str:
    return resources.files(__package__).joinpath("settle.lua").read_text(encoding="utf-8")


def _keys(workflow_id: str) -> list[str]:
    """settle.lua's keys, in its order."""
    return [
        keys.workflow(workflow_id),
        keys.workflow_results(workflow_id),
        keys.workflow_dispatched(workflow_id),
        keys.workflow_pending(workflow_id),
        keys.METRICS_WORKFLOWS,
        keys.REVOKED,
    ]


def _settle(client: redis.Redis, workflow_id: str, plan: Plan, mode: str, *args: str) -> list[str]:
    now = datetime.now(UTC)
    script = client.register_script(_settle_source())
    reply = script(
        keys=_keys(workflow_id),
        args=[
            mode,
            now.isoformat(),
            repr(now.timestamp()),
            KEEP_S,
            keys.workflow_events(workflow_id),
            len(plan.steps),
            *args,
        ],
        client=client,
    )
    return [as_text(part) for part in reply]


def queue_save(
    pipe: Any, workflow_id: str, plan: Plan, *, submitted_at: str, sent: Sequence[str]
) -> None:
    """Queue the commands that record an accepted workflow whose steps ``sent`` go with it."""
    record = keys.workflow(workflow_id)
    pipe.hset(record, mapping={"plan": plan.to_json(), "submitted_at": submitted_at})
    pipe.expire(record, KEEP_S)
    if sent:
        pipe.sadd(keys.workflow_dispatched(workflow_id), *sent)
        pipe.expire(keys.workflow_dispatched(workflow_id), KEEP_S)
    queue_indexed(pipe, workflow_id, submitted_at)


def queue_indexed(pipe: Any, workflow_id: str, submitted_at: str) -> None:
    """Queue the workflow's entry in the index of recent workflows, and the trim that keeps
    only the newest (an expired record's id left in it reads as gone)."""
    score = datetime.fromisoformat(submitted_at).timestamp()
    pipe.zadd(keys.WORKFLOW_INDEX, {workflow_id: score})
    pipe.zremrangebyrank(keys.WORKFLOW_INDEX, 0, -defaults.WORKFLOW_INDEX_MAX_ENTRIES - 1)


def recent(client: redis.Redis, limit: int) -> list[str]:
    """The ids of the newest ``limit`` workflows submitted, newest first."""
    return [as_text(raw) for raw in client.zrevrange(keys.WORKFLOW_INDEX, 0, limit - 1)]


def queue_counted(pipe: Any, plan: Plan) -> None:
    """Queue the counting of an accepted workflow, once its first steps went out."""
    for command in metrics.submitted_commands(len(plan.steps)):
        pipe.execute_command(*command)


def forget(client: redis.Redis, workflow_id: str, plan: Plan) -> None:
    """Undo queue_save and the step records, for a workflow whose first steps were not sent."""
    with client.pipeline(transaction=False) as pipe:
        pipe.delete(
            keys.workflow(workflow_id),
            keys.workflow_dispatched(workflow_id),
            keys.workflow_results(workflow_id),
        )
        pipe.zrem(keys.WORKFLOW_INDEX, workflow_id)
        pipe.execute()
    for step in plan.initial():
        records.forget_submission(client, step.task_id)


def step_commands(workflow_id: str, step_id: str, state: str, encoded_result: str) -> list[Command]:
    """What a step's stored state adds to its workflow, in the script that stores it.

    Only a stored state writes them: a SUCCESS is never overwritten, so a step that
    runs twice leaves the result of its first SUCCESS, once.
    """
    keep = str(KEEP_S)
    if state == records.SUCCESS:
        results = keys.workflow_results(workflow_id)
        return [["HSET", results, step_id, encoded_result], ["EXPIRE", results, keep]]
    field = {records.FAILURE: "failed_step", records.REVOKED: "revoked_step"}.get(state)
    if field is None:
        return []
    record = keys.workflow(workflow_id)
    # The first step to fail (or be revoked) is the one the workflow names.
    return [["HSETNX", record, field, step_id], ["EXPIRE", record, keep]]


@dataclass(frozen=True)
class Advance:
    # How the workflow ended; None while it runs.
    outcome: str | None
    # The steps the caller must send now.
    ready: tuple[str, ...] = ()
    gone: bool = False


def advance(client: redis.Redis, workflow_id: str, plan: Plan, returned: str) -> Advance:
    """Settle the workflow after step ``returned`` ended; claim the steps it made ready."""
    candidates = [[step.id, list(step.deps)] for step in plan.waiting_on(returned)]
    reply = _settle(
        client, workflow_id, plan, _ADVANCE, returned, json.dumps(candidates, separators=(",", ":"))
    )
    if reply[0] == _GONE:
        return Advance(outcome=None, gone=True)
    if reply[0] != RUNNING:
        return Advance(outcome=reply[0])
    return Advance(outcome=None, ready=tuple(reply[1:]))


@dataclass(frozen=True)
class Revoke:
    # REVOKED now, or the outcome it had already; None: no such workflow.
    outcome: str | None
    revoked_now: bool = False
    # The tasks of the steps sent and not finished, to stop.
    unfinished: tuple[str, ...] = ()


def revoke(client: redis.Redis, workflow_id: str, plan: Plan) -> Revoke:
    """End the workflow REVOKED and revoke, durably, every step not finished."""
    pairs = [part for step in plan.steps for part in (step.id, step.task_id)]
    reply = _settle(client, workflow_id, plan, _REVOKE, *pairs)
    if reply[0] == _GONE:
        return Revoke(outcome=None)
    if reply[0] == _ENDED:
        return Revoke(outcome=reply[1])
    return Revoke(outcome=records.REVOKED, revoked_now=True, unfinished=tuple(reply[1:]))


def queue_sent(pipe: Any, workflow_id: str, step_ids: Sequence[str]) -> None:
    """Queue the commands that say claimed steps were sent (on the send's own MULTI)."""
    pipe.hdel(keys.workflow_pending(workflow_id), *step_ids)


def fail_step(
    client: redis.Redis, workflow_id: str, plan: Plan, step_id: str, error: dict[str, str]
) -> Advance:
    """End the workflow FAILURE at a step that could not be sent (its input did not fit)."""
    record = keys.workflow(workflow_id)
    with client.pipeline(transaction=True) as pipe:
        pipe.hsetnx(record, "failed_step", step_id)
        pipe.hsetnx(record, "failure", json.dumps(error))
        pipe.hdel(keys.workflow_pending(workflow_id), step_id)
        pipe.execute()
    return advance(client, workflow_id, plan, step_id)


@dataclass(frozen=True)
class Stored:
    """A workflow as Redis holds it."""

    plan: Plan
    submitted_at: str | None
    outcome: str | None
    finished_at: str | None
    failed_step: str | None
    # Why the failed step could not be sent, when that is why it failed.
    failure: dict[str, Any] | None
    dispatched: frozenset[str]
    finished_steps: int


def read(client: redis.Redis, workflow_id: str) -> Stored | None:
    """The workflow's record, the steps sent and how many finished; None if unknown."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.workflow(workflow_id))
        pipe.smembers(keys.workflow_dispatched(workflow_id))
        pipe.hlen(keys.workflow_results(workflow_id))
        raw, dispatched, finished = pipe.execute()
    record = {as_text(k): as_text(v) for k, v in raw.items()}
    if "plan" not in record:
        return None
    try:
        plan = Plan.from_json(record["plan"])
    except PlanError:
        return None
    failure = record.get("failure")
    return Stored(
        plan=plan,
        submitted_at=record.get("submitted_at"),
        outcome=record.get("outcome"),
        finished_at=record.get("finished_at"),
        failed_step=record.get("failed_step"),
        failure=json.loads(failure) if failure else None,
        dispatched=frozenset(as_text(s) for s in dispatched),
        finished_steps=int(finished),
    )


def read_plan(client: redis.Redis, workflow_id: str) -> Plan | None:
    raw = client.hget(keys.workflow(workflow_id), "plan")
    if raw is None:
        return None
    return Plan.from_json(raw)


def read_results(
    client: redis.Redis, workflow_id: str, step_ids: Sequence[str]
) -> list[str | None]:
    """The encoded results of finished steps (None for a step not finished)."""
    if not step_ids:
        return []
    raw = client.hmget(keys.workflow_results(workflow_id), list(step_ids))
    return [None if value is None else as_text(value) for value in raw]
