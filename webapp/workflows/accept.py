"""Accepting a workflow: its description checked, its Idempotency-Key claimed, then its
record and first steps sent together (``tasks.workflows.dispatch``)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from tasks import keys, records
from tasks.celery_ext import atomic_publish
from tasks.connections import UNREACHABLE
from tasks.workflows import description, dispatch, state
from tasks.workflows.plan import Plan
from webapp import durable_accept, idempotency
from webapp.errors import ApiError, BadRequest, Conflict, NotFound, ServiceUnavailable
from webapp.services import Services
from webapp.workflows import read_model

logger = logging.getLogger(__name__)

# What a request that reuses the Idempotency-Key of one still being accepted is told
# to wait, in seconds: accepting a workflow takes one round trip to Redis.
IN_FLIGHT_RETRY_AFTER_S = 1
# What a 503 from durable accept tells the client: the workflow is written, not lost.
RETRY_ADVICE = (
    "The workflow is not lost and may run; send the request again with the same "
    "Idempotency-Key, which answers this workflow rather than accepting a second one"
)


class DescriptionTooLarge(ApiError):
    status, code = 413, "payload_too_large"


def parse(body: dict[str, Any]) -> Plan:
    """The plan of a description, or the API's error naming the step at fault."""
    try:
        return description.parse(body)
    except description.UnknownTask as error:
        raise NotFound(error.message, field=error.field) from None
    except description.TooManySteps as error:
        raise DescriptionTooLarge(error.message, field=error.field) from None
    except description.InvalidDescription as error:
        raise BadRequest(error.message, field=error.field) from None


def submit(
    services: Services,
    plan: Plan,
    *,
    retry_after_s: int,
    idempotency_key: str | None = None,
    body_fingerprint: str = "",
    replicas: durable_accept.ReplicaWait | None = None,
) -> tuple[dict[str, Any], bool]:
    """Accept a workflow; return its document and whether it is new (False: a replayed key).

    With ``replicas``, only once that many replicas hold it (webapp/durable_accept.py).
    """
    workflow_id = str(uuid.uuid4())
    claimed_key = None
    first_steps = plan.initial()
    try:
        if idempotency_key is not None:
            redis_key = keys.workflow_idempotency(idempotency_key)
            first = idempotency.claim_first(
                services.redis, redis_key, body_fingerprint, workflow_id, "workflow_id"
            )
            if first is not None:
                existing = _existing(services, redis_key, first, body_fingerprint)
                if existing is not None:
                    return existing, False
                workflow_id = first.id  # the first request failed: accept its workflow now
            claimed_key = idempotency_key
        submitted_at = records.utc_now_iso()
        with durable_accept.replicated(
            replicas,
            what=f"workflow {workflow_id}",
            advice=RETRY_ADVICE,
            retry_after_s=retry_after_s,
        ) as hold:
            dispatch.send_all(
                services.celery,
                services.redis,
                workflow_id,
                [dispatch.prepare(step) for step in first_steps],
                atomically=services.submit_atomically,
                before=lambda pipe: state.queue_save(
                    pipe,
                    workflow_id,
                    plan,
                    submitted_at=submitted_at,
                    sent=[step.id for step in first_steps],
                ),
                after=lambda pipe: _counted_and_held(pipe, plan, hold),
            )
    except atomic_publish.DeliveryUncertain:
        # Nothing undone: the MULTI/EXEC holding the workflow may still run.
        logger.warning("broker did not confirm workflow %s", workflow_id, exc_info=True)
        raise ServiceUnavailable(
            f"the task broker did not confirm workflow {workflow_id}: it was sent and may "
            f"still be accepted and run. GET /api/workflows/{workflow_id} once the broker "
            "answers (404: it was not accepted)",
            retry_after_s=retry_after_s,
        ) from None
    except UNREACHABLE:
        logger.warning("broker unreachable, workflow %s not accepted", workflow_id, exc_info=True)
        _undo(services, workflow_id, plan, claimed_key)
        raise ServiceUnavailable(
            "the task broker cannot be reached; nothing was enqueued, try again shortly",
            retry_after_s=retry_after_s,
        ) from None
    accepted = state.Stored(
        plan=plan,
        submitted_at=submitted_at,
        outcome=None,
        finished_at=None,
        failed_step=None,
        failure=None,
        dispatched=frozenset(step.id for step in first_steps),
        finished_steps=0,
    )
    return read_model.document(workflow_id, accepted, {}), True


def _counted_and_held(pipe: Any, plan: Plan, hold: durable_accept.Holder) -> None:
    state.queue_counted(pipe, plan)
    hold(pipe)


def _existing(
    services: Services, redis_key: str, first: idempotency.Claim, body_fingerprint: str
) -> dict[str, Any] | None:
    """The key's first workflow; None once this request takes over accepting it.

    A claim whose workflow is not stored belongs to a request still accepting it (409,
    try again), or, once it is no longer in flight, to one that failed after taking
    the key: this request then accepts the workflow under the claimed id.
    """
    found = read_model.load(services, first.id)
    if found is not None:
        return found
    if not first.in_flight():
        taken_by = idempotency.take_over(
            services.redis, redis_key, first, body_fingerprint, "workflow_id"
        )
        if taken_by is None:
            return None
    raise Conflict(
        "a request with this Idempotency-Key is still being accepted; try again shortly",
        field="Idempotency-Key",
        retry_after_s=IN_FLIGHT_RETRY_AFTER_S,
    )


def _undo(services: Services, workflow_id: str, plan: Plan, idempotency_key: str | None) -> None:
    try:
        if not services.submit_atomically:
            # Sent in one MULTI/EXEC, a workflow that was not sent was not stored either.
            state.forget(services.redis, workflow_id, plan)
        if idempotency_key is not None:
            services.redis.delete(keys.workflow_idempotency(idempotency_key))
    except UNREACHABLE:
        # Redis is down too; the record expires on its own.
        logger.warning("could not remove the record of unsent workflow %s", workflow_id)
