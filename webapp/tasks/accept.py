"""Accepting a task: idempotency, the submission record, then the Celery message."""

from __future__ import annotations

import logging
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis

from tasks import delayed, keys, records
from tasks.celery_ext import atomic_publish
from tasks.connections import UNREACHABLE
from webapp import atomic_send, durable_accept, idempotency
from webapp.errors import ServiceUnavailable, TooManyRequests
from webapp.services import Services
from webapp.tasks import read_model as task_views
from webapp.tasks.request import Submission

logger = logging.getLogger(__name__)

# What a 503 from durable accept tells the client: the task is written, not lost.
RETRY_ADVICE = (
    "The task is not lost and may run; send the request again with the same "
    "Idempotency-Key, which answers this task rather than accepting a second one"
)


# How often a replay looks for the task of a claim still in flight.
CLAIM_POLL_S = 0.05


def unavailable(retry_after_s: int) -> ServiceUnavailable:
    return ServiceUnavailable(
        "the task broker cannot be reached; nothing was enqueued, try again shortly",
        retry_after_s=retry_after_s,
    )


def unconfirmed(task_id: str, retry_after_s: int) -> ServiceUnavailable:
    """The 503 of a task sent to a broker that did not answer: it may yet run."""
    return ServiceUnavailable(
        f"the task broker did not confirm task {task_id}: it was sent and may still "
        f"be enqueued and run. GET /api/tasks/{task_id} once the broker answers "
        "(404: it was not enqueued), or send the request again with the same "
        "Idempotency-Key, which answers this task if it was enqueued and sends it if not",
        retry_after_s=retry_after_s,
        task_id=task_id,
    )


def submit(
    services: Services,
    submission: Submission,
    *,
    retry_after_s: int,
    idempotency_key: str | None = None,
    body_fingerprint: str = "",
    extra: dict[str, str] | None = None,
    replicas: durable_accept.ReplicaWait | None = None,
) -> tuple[dict[str, Any], bool]:
    """Accept a task; return its document and whether it is new (False: a replayed key).

    With ``replicas``, only once that many replicas hold the task (webapp/durable_accept.py).
    """
    task_id = str(uuid.uuid4())
    claimed_key = None
    counted_delayed = False
    try:
        if idempotency_key is not None:
            claim = _Claim(services, keys.idempotency(idempotency_key), body_fingerprint)
            first = claim.first(task_id)
            if first is not None:
                existing = _replayed(claim, first, retry_after_s)
                if existing is not None:
                    return existing, False
                task_id = first.id  # the first request failed: send its task now
            claimed_key = idempotency_key
        counted_delayed = _count_delayed(services, submission, task_id, retry_after_s, claimed_key)
        with durable_accept.replicated(
            replicas,
            what=f"task {task_id}",
            advice=RETRY_ADVICE,
            retry_after_s=retry_after_s,
        ) as hold:
            record = _record_and_send(services, submission, task_id, extra or {}, hold)
    except atomic_publish.DeliveryUncertain:
        # Neither undone nor reported as lost: the MULTI/EXEC may still run.
        logger.warning("broker did not confirm task %s", task_id, exc_info=True)
        raise unconfirmed(task_id, retry_after_s) from None
    except UNREACHABLE:
        logger.warning("broker unreachable, task %s not enqueued", task_id, exc_info=True)
        _undo(services, task_id, claimed_key, counted_delayed)
        raise unavailable(retry_after_s) from None
    return records.document(task_id, record, None), True


def _count_delayed(
    services: Services,
    submission: Submission,
    task_id: str,
    retry_after_s: int,
    claimed_key: str | None,
) -> bool:
    """Count a countdown/eta task against the cap (True), or refuse it; tasks due now
    pass by (False)."""
    now = datetime.now(UTC)
    if submission.eta is None or delay_seconds(submission.eta, now) is None:
        return False
    limit = services.max_delayed_tasks
    if delayed.claim(services.redis, task_id, submission.eta.timestamp(), now.timestamp(), limit):
        return True
    if claimed_key is not None:
        services.redis.delete(keys.idempotency(claimed_key))
    raise TooManyRequests(
        f"{limit} countdown/eta tasks are pending already (TASKRELAY_MAX_DELAYED_TASKS); "
        "nothing was enqueued, try again once some have started",
        retry_after_s=retry_after_s,
    )


class _Claim:
    """One request's view of its Idempotency-Key claim."""

    def __init__(self, services: Services, redis_key: str, body_fingerprint: str) -> None:
        self.services = services
        self.redis_key = redis_key
        self.body_fingerprint = body_fingerprint

    def first(self, task_id: str) -> idempotency.Claim | None:
        """Claim the key for ``task_id``; the first request's claim if it was taken."""
        return idempotency.claim_first(
            self.services.redis, self.redis_key, self.body_fingerprint, task_id, "task_id"
        )

    def take_over(self, first: idempotency.Claim) -> idempotency.Claim | None:
        return idempotency.take_over(
            self.services.redis, self.redis_key, first, self.body_fingerprint, "task_id"
        )


def _replayed(claim: _Claim, first: idempotency.Claim, retry_after_s: int) -> dict[str, Any] | None:
    """The task of the key's first request; None once this request takes over its sending.

    A claim without a record is a first request still on its way (this one waits
    for its record) or one that failed, even with a reply lost after its MULTI/EXEC
    was sent: once the claim is no longer in flight (webapp/idempotency.py), this
    request takes the key over and sends the same task, under the same id, so that a
    MULTI/EXEC that ran after all and this one name one task.
    """
    services = claim.services
    waited_until = time.monotonic() + 2 * idempotency.IN_FLIGHT_S
    while time.monotonic() < waited_until:
        doc = task_views.load(services, first.id)
        if doc is not None:
            return doc
        if not first.in_flight():
            other = claim.take_over(first)
            if other is None:
                return None
            first = other  # another replay took it over first: wait for its task
        time.sleep(CLAIM_POLL_S)
    raise ServiceUnavailable(
        f"the first request with this Idempotency-Key (task {first.id}) is still being "
        "accepted; try again shortly",
        retry_after_s=retry_after_s,
        task_id=first.id,
    )


def _record_and_send(
    services: Services,
    submission: Submission,
    task_id: str,
    extra: dict[str, str],
    hold: durable_accept.Holder,
) -> dict[str, str]:
    """Write the task's record and send its message: together, where the broker allows.

    On taskrelay's Redis transport both go in one MULTI/EXEC, so a web process
    killed mid-request leaves neither. On another broker the record comes first:
    a failed send is undone by the caller, and a killed process leaves a record
    that reads QUEUED until it expires.
    """
    if not services.submit_atomically:
        record = _save_record(services.redis, submission, task_id, extra)
        _send(services, submission, task_id)
        return record

    def with_record(pipe: redis.client.Pipeline) -> dict[str, str]:
        hold(pipe)
        return _queue_record(pipe, submission, task_id, extra)

    return atomic_send.send(
        services,
        submission.spec.celery_name,
        task_id=task_id,
        kwargs=submission.call,
        queue=submission.spec.queue,
        with_commands=with_record,
        countdown=_countdown(submission),
        priority=submission.priority,
    )


def _save_record(
    client: redis.Redis, submission: Submission, task_id: str, extra: dict[str, str]
) -> dict[str, str]:
    with client.pipeline(transaction=False) as pipe:
        record = _queue_record(pipe, submission, task_id, extra)
        pipe.execute()
    return record


def _queue_record(
    pipe: redis.client.Pipeline, submission: Submission, task_id: str, extra: dict[str, str]
) -> dict[str, str]:
    return records.save_submission(
        pipe,
        task_id,
        task=submission.spec.name,
        args=submission.args,
        kwargs=submission.kwargs,
        submitted_at=records.utc_now_iso(),
        extra=extra,
    )


def delay_seconds(eta: datetime | None, now: datetime) -> int | None:
    """Whole seconds until eta, rounded up; None when it is due already.

    RabbitMQ's native delayed delivery counts whole seconds and refuses less
    than one, so a delay is sent as a countdown that never runs early.
    """
    if eta is None:
        return None
    seconds = math.ceil((eta - now).total_seconds())
    return seconds if seconds > 0 else None


def _countdown(submission: Submission) -> int | None:
    return delay_seconds(submission.eta, datetime.now(UTC))


def _send(services: Services, submission: Submission, task_id: str) -> None:
    """Send the task's message with Celery's send_task (a broker without transactions)."""
    services.celery.send_task(
        submission.spec.celery_name,
        kwargs=submission.call,
        task_id=task_id,
        queue=submission.spec.queue,
        countdown=_countdown(submission),
        priority=submission.priority,
        retry=True,
    )


def _undo(
    services: Services, task_id: str, idempotency_key: str | None, counted_delayed: bool
) -> None:
    """Take back what a request wrote before its task could not be sent."""
    try:
        if not services.submit_atomically:
            # Sent in one MULTI/EXEC, a record that was not sent was not written either.
            records.forget_submission(services.redis, task_id)
        if counted_delayed:
            delayed.release(services.redis, task_id)
        if idempotency_key is not None:
            services.redis.delete(keys.idempotency(idempotency_key))
    except UNREACHABLE:
        # Redis is down too; the record expires on its own and names no message.
        logger.warning("could not remove the record of unsent task %s", task_id)
