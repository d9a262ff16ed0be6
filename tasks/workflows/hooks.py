# kombu is untyped: every call into it would need its own ignore.
# mypy: disable-error-code="no-untyped-call"
"""What a workflow step's worker does beyond running the task: called by ``TrackedTask``.

``commands_with_state`` adds the step's own facts (its result, or its failure) to
the script that stores its state, so they exist exactly when the state does.
``step_ended`` then settles the workflow (``state.advance``) and sends the steps it
claimed. A worker that dies in between leaves the step's message unacknowledged;
delivered again, the step runs again (tasks are idempotent), its SUCCESS is not
stored twice, and ``step_ended`` sends what the first delivery had claimed.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import redis
from celery import Celery
from celery.exceptions import Reject
from kombu.exceptions import OperationalError
from kombu.utils import json as kombu_json

from tasks import records
from tasks.app_factory import create_celery_app
from tasks.celery_ext import atomic_publish
from tasks.celery_ext.result_backend import Command
from tasks.connections import shared_client
from tasks.workflows import dispatch, state
from tasks.workflows.plan import Plan, PlanError, leaves, materialize

logger = logging.getLogger(__name__)

# Plans held per worker process: a plan never changes, and a chord's every header
# step would otherwise read the whole description again when it returns.
PLAN_CACHE_ENTRIES = 64
# States after which a step's workflow is settled by its worker.
SETTLING_STATES = frozenset({records.SUCCESS, records.FAILURE, records.REVOKED})
# What an unreachable Redis or broker raises while settling or sending.
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OperationalError)


def commands_with_state(request: Any, task_state: str, result: Any) -> list[Command]:
    """The step's facts for its workflow, stored with its state; none for a plain task."""
    member = dispatch.membership(request)
    if member is None or task_state not in SETTLING_STATES:
        return []
    encoded = kombu_json.dumps(result) if task_state == records.SUCCESS else ""
    return state.step_commands(*member, task_state, encoded)


def step_ended(app: Celery, request: Any, task_state: str) -> None:
    """Settle the step's workflow and send the steps now ready; nothing for a plain task.

    Redis out of reach even after the client's retries: the step's message goes back
    to its queue (``Reject``), and the step, run again, settles again.
    """
    member = dispatch.membership(request)
    if member is None or task_state not in SETTLING_STATES:
        return
    workflow_id, step_id = member
    redis_url = app.conf.taskrelay_redis_url
    try:
        plan = _plan(redis_url, workflow_id)
        if plan is None:
            return  # expired, or never accepted: nothing to advance
        client = shared_client(redis_url)
        settled = state.advance(client, workflow_id, plan, step_id)
        if settled.ready:
            _send_ready(app, client, workflow_id, plan, settled.ready)
    except _UNREACHABLE as error:
        raise Reject(f"workflow {workflow_id} not settled: {error}", requeue=True) from None


@functools.lru_cache(maxsize=PLAN_CACHE_ENTRIES)
def _plan(redis_url: str, workflow_id: str) -> Plan | None:
    try:
        return state.read_plan(shared_client(redis_url), workflow_id)
    except PlanError:
        logger.exception("workflow %s has a plan this worker cannot read", workflow_id)
        return None


def _send_ready(
    app: Celery, client: redis.Redis, workflow_id: str, plan: Plan, ready: tuple[str, ...]
) -> None:
    steps = [plan.step(step_id) for step_id in ready]
    needed = sorted(
        {leaf for step in steps if step.input is not None for leaf in leaves(step.input)}
    )
    encoded = state.read_results(client, workflow_id, needed)
    results = {
        step_id: kombu_json.loads(raw) for step_id, raw in zip(needed, encoded, strict=True) if raw
    }
    outgoing = []
    for step in steps:
        try:
            if step.input is None:
                outgoing.append(dispatch.prepare(step))
            else:
                outgoing.append(dispatch.prepare(step, materialize(step.input, results)))
        except (dispatch.StepNotSendable, KeyError) as error:
            message = error.message if isinstance(error, dispatch.StepNotSendable) else str(error)
            logger.warning("workflow %s: step %s not sent: %s", workflow_id, step.path, message)
            # The workflow ends FAILURE here; the other steps claimed with it stay unsent.
            state.fail_step(
                client,
                workflow_id,
                plan,
                step.id,
                {"type": type(error).__name__, "message": message},
            )
            return
    publisher, atomically = _publisher(app.conf.taskrelay_redis_url, app.conf.broker_url)
    dispatch.send_all(
        publisher,
        client,
        workflow_id,
        outgoing,
        atomically=atomically,
        after=lambda pipe: state.queue_sent(pipe, workflow_id, [o.step.id for o in outgoing]),
    )


@functools.cache
def _publisher(redis_url: str, broker_url: str) -> tuple[Celery, bool]:
    """This process's app for sending steps, and whether it sends in transactions.

    The worker's own app retries a timed-out publish, so kombu lends it no batch; a
    publish-only app, as the web's, sends a step with its bookkeeping in one MULTI/EXEC.
    """
    publisher = create_celery_app(redis_url, broker_url=broker_url, publish_only=True)
    atomically = atomic_publish.lends_transactions(publisher) and broker_url == redis_url
    return publisher, atomically
