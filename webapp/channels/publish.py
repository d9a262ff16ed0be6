"""Accepting a channel message: give it an id and hand it to the relay queue."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from tasks import channels
from tasks.channels import log as channel_log
from tasks.channels.relay import RELAY_TASK_NAME
from webapp.channels.metrics import METRICS
from webapp.errors import UNREACHABLE, BadRequest, ServiceUnavailable
from webapp.services import Services, services

logger = logging.getLogger(__name__)

FIELDS = ("data",)


def parse_body(body: dict[str, Any]) -> Any:
    extra = sorted(set(body) - set(FIELDS))
    if extra:
        raise BadRequest(
            f"unknown field '{extra[0]}'; allowed: {', '.join(FIELDS)}", field=extra[0]
        )
    if "data" not in body:
        raise BadRequest("'data' is required: the message, any JSON value", field="data")
    return body["data"]


def publish_here(channel: str, data: Any) -> dict[str, str]:
    """Publish with this app's settings (TASKRELAY_CHANNEL_RETENTION) and count it."""
    config = current_app.config
    accepted = publish(
        services(),
        channels.check_name(channel),
        data,
        retention=int(config["CHANNEL_RETENTION"]),
        retry_after_s=config["RETRY_AFTER_S"],
    )
    METRICS.published(channel)
    return accepted


def publish(
    svc: Services, channel: str, data: Any, *, retention: int, retry_after_s: int
) -> dict[str, str]:
    """Enqueue the relay task; answer the message's id, which subscribers will see."""
    pending = channel_log.Pending(
        channel=channel,
        message_id=channels.new_message_id(),
        data=data,
        published_at=datetime.now(UTC).isoformat(),
        retention=retention,
    )
    message_id = pending.message_id
    try:
        # Recorded first: should the broker lose the task, the sweeper relays it.
        channel_log.remember_pending(svc.redis, pending, time.time())
        svc.celery.send_task(
            RELAY_TASK_NAME, kwargs=asdict(pending), task_id=message_id, retry=True
        )
    except UNREACHABLE:
        logger.warning("broker unreachable, message %s not enqueued", message_id, exc_info=True)
        _forget(svc, message_id)
        raise ServiceUnavailable(
            "the relay queue cannot be reached; nothing was published, try again shortly",
            retry_after_s=retry_after_s,
        ) from None
    return {"id": message_id, "channel": channel}


def _forget(svc: Services, message_id: str) -> None:
    try:
        channel_log.forget_pending(svc.redis, message_id)
    except UNREACHABLE:
        # Redis is down as well: the sweeper will relay the message later, which
        # is why the 503 says it was not published and a retry may repeat it.
        logger.warning("could not forget pending message %s", message_id)
