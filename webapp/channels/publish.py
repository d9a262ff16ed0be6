"""Accepting a channel message: check its size and the cap on channels, give it an id, and
hand it to the relay queue."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from redis.client import Pipeline

from tasks import channels
from tasks.celery_ext import atomic_publish
from tasks.channels import bounds, index
from tasks.channels import log as channel_log
from tasks.channels.relay import RELAY_TASK_NAME
from tasks.connections import UNREACHABLE
from tasks.queues import RELAY_QUEUE
from webapp import atomic_send, durable_accept
from webapp.channels import admitted as admitted_channels
from webapp.channels.metrics import METRICS
from webapp.errors import ApiError, BadRequest, ServiceUnavailable
from webapp.services import Services, services

logger = logging.getLogger(__name__)

FIELDS = ("data",)
# What a 503 from durable accept tells the client: the message is written, not lost.
RETRY_ADVICE = (
    "The message is not lost and will likely reach subscribers under this id; "
    "publishing it again may deliver it twice"
)


class MessageTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class TooManyChannels(ApiError):
    status, code = 409, "too_many_channels"


def parse_body(body: dict[str, Any]) -> Any:
    extra = sorted(set(body) - set(FIELDS))
    if extra:
        raise BadRequest(
            f"unknown field '{extra[0]}'; allowed: {', '.join(FIELDS)}", field=extra[0]
        )
    if "data" not in body:
        raise BadRequest("'data' is required: the message, any JSON value", field="data")
    return body["data"]


def check_size(data: Any, max_bytes: int) -> None:
    size = bounds.data_bytes(data)
    if size > max_bytes:
        raise MessageTooLarge(
            f"the message's data is {size} bytes as compact JSON; a channel message holds "
            f"at most {max_bytes} bytes",
            field="data",
        )


def retention_of(config: Any) -> bounds.Retention:
    """What the relay keeps of a channel, by this app's settings (TASKRELAY_CHANNEL_*)."""
    return bounds.Retention(
        messages=int(config["CHANNEL_RETENTION"]),
        bytes=int(config["CHANNEL_RETENTION_BYTES"]),
        idle_ttl_s=int(config["CHANNEL_IDLE_TTL_S"]),
        recent=int(config["CHANNEL_RECENT_MESSAGES"]),
    )


def publish_here(channel: str, data: Any) -> dict[str, str]:
    """Publish with this app's settings and count it."""
    config = current_app.config
    check_size(data, int(config["CHANNEL_MESSAGE_MAX_BYTES"]))
    accepted = publish(
        services(),
        channels.check_name(channel),
        data,
        retention=retention_of(config),
        max_channels=int(config["CHANNEL_MAX_CHANNELS"]),
        retry_after_s=config["RETRY_AFTER_S"],
        replicas=durable_accept.current(),
        admitted=admitted_channels.current(),
    )
    METRICS.published(channel)
    return accepted


def publish(
    svc: Services,
    channel: str,
    data: Any,
    *,
    retention: bounds.Retention,
    max_channels: int,
    retry_after_s: int,
    replicas: durable_accept.ReplicaWait | None = None,
    admitted: admitted_channels.AdmittedChannels | None = None,
) -> dict[str, str]:
    """Enqueue the relay task; answer the message's id, which subscribers will see.

    The message is recorded as pending with its relay task, so that the sweeper relays
    it should the broker lose the task: in the task's MULTI/EXEC for a channel that
    ``admitted`` knows, by the cap's check before it otherwise. With ``replicas``, only once
    that many replicas hold it (webapp/durable_accept.py).
    """
    pending = channel_log.Pending(
        channel=channel,
        message_id=channels.new_message_id(),
        data=data,
        published_at=datetime.now(UTC).isoformat(),
        retention=retention.messages,
        retention_bytes=retention.bytes,
        idle_ttl_s=retention.idle_ttl_s,
        recent=retention.recent,
    )
    message_id = pending.message_id
    now_s = time.time()
    # Only a transaction can carry the pending record with the relay task; on another
    # broker it must be written before the task is sent.
    known = svc.submit_atomically and admitted is not None and admitted.known(channel, now_s)
    if not known:
        _admit(svc, pending, now_s, max_channels, admitted, retry_after_s)
    try:
        with durable_accept.replicated(
            replicas,
            what=f"message {message_id}",
            advice=RETRY_ADVICE,
            retry_after_s=retry_after_s,
        ) as hold:
            _send(svc, pending, hold, remember_at_s=now_s if known else None)
    except atomic_publish.DeliveryUncertain:
        # Kept, not forgotten: sent or not, the sweeper relays a recorded message.
        logger.warning("broker did not confirm message %s", message_id, exc_info=True)
        recorded = (
            "it may have been recorded with it, and then still reaches subscribers"
            if known
            else "it is recorded and will still reach subscribers"
        )
        raise ServiceUnavailable(
            f"the relay queue did not confirm message {message_id}; {recorded}, so "
            "publishing it again may deliver it twice",
            retry_after_s=retry_after_s,
        ) from None
    except UNREACHABLE:
        if not known:
            _forget(svc, message_id)
        raise _unreachable(message_id, retry_after_s) from None
    return {"id": message_id, "channel": channel}


def _admit(
    svc: Services,
    pending: channel_log.Pending,
    now_s: float,
    max_channels: int,
    admitted: admitted_channels.AdmittedChannels | None,
    retry_after_s: int,
) -> None:
    """Record the message as pending under the cap on channels, or refuse it (409)."""
    try:
        expires_s = index.admit_and_remember(svc.redis, pending, now_s, max_channels=max_channels)
    except UNREACHABLE:
        raise _unreachable(pending.message_id, retry_after_s) from None
    if expires_s is None:
        raise TooManyChannels(
            f"{max_channels} channels exist, the most this server keeps; publish to an "
            "existing channel, or wait until idle channels expire",
            field="channel",
        )
    if admitted is not None:
        admitted.admitted(pending.channel, expires_s, now_s)


def _send(
    svc: Services,
    pending: channel_log.Pending,
    hold: durable_accept.Holder,
    *,
    remember_at_s: float | None,
) -> None:
    """Send the relay task: on taskrelay's Redis transport in a MULTI/EXEC whose
    connection ``hold`` keeps for durable accept's WAIT (webapp/atomic_send.py), with
    the message's pending record when ``remember_at_s`` says when it was accepted.

    Otherwise the record was written before, on the same Redis, so the WAIT after
    the message covers it too. Another broker gets send_task, and durable accept,
    which needs the transaction, refuses to answer for it.
    """
    kwargs = asdict(pending)
    if not svc.submit_atomically:
        svc.celery.send_task(RELAY_TASK_NAME, kwargs=kwargs, task_id=pending.message_id, retry=True)
        return

    def with_commands(pipe: Pipeline) -> None:
        if remember_at_s is not None:
            channel_log.queue_pending(pipe, pending, remember_at_s)
        hold(pipe)

    atomic_send.send(
        svc,
        RELAY_TASK_NAME,
        task_id=pending.message_id,
        kwargs=kwargs,
        queue=RELAY_QUEUE,
        with_commands=with_commands,
    )


def _unreachable(message_id: str, retry_after_s: int) -> ServiceUnavailable:
    logger.warning("broker unreachable, message %s not enqueued", message_id, exc_info=True)
    return ServiceUnavailable(
        "the relay queue cannot be reached; nothing was published, try again shortly",
        retry_after_s=retry_after_s,
    )


def _forget(svc: Services, message_id: str) -> None:
    try:
        channel_log.forget_pending(svc.redis, message_id)
    except UNREACHABLE:
        # Redis is down as well: the sweeper will relay the message later, which
        # is why the 503 says it was not published and a retry may repeat it.
        logger.warning("could not forget pending message %s", message_id)
