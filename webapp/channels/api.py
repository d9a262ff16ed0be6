"""The channels API: publish, list, read history, and follow channels or patterns live."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from tasks import channels
from tasks.channels import InvalidChannel
from tasks.channels import cursor as channel_cursor
from tasks.channels.cursor import Cursor
from webapp import sse, sse_slots
from webapp.channels import publish, read_model
from webapp.channels.hub import Hub, Selector
from webapp.channels.metrics import METRICS
from webapp.channels.stream import ChannelStream
from webapp.errors import BadRequest, error_response
from webapp.jsonbody import read_json_object
from webapp.query import limit_arg
from webapp.services import services

bp = Blueprint("channels_api", __name__, url_prefix="/api")

# A client that has not taken a write for this long is disconnected, in seconds,
# so one that stopped reading cannot hold a server thread for ever.
SSE_WRITE_TIMEOUT_S = 30.0
HUB_EXTENSION_KEY = "taskrelay.hub"


def hub() -> Hub:
    found: Hub = current_app.extensions[HUB_EXTENSION_KEY]
    return found


@bp.errorhandler(InvalidChannel)
def invalid_channel(error: InvalidChannel) -> Response:
    return error_response(BadRequest.status, BadRequest.code, error.message, error.field)


@bp.post("/channels/<channel>/messages")
def publish_message(channel: str) -> Response:
    channels.check_name(channel)
    data = publish.parse_body(read_json_object())
    response = jsonify(publish.publish_here(channel, data))
    response.status_code = 202
    return response


@bp.get("/channels")
def list_channels() -> Response:
    config = current_app.config
    after = request.args.get("cursor") or None
    if after is not None:
        channels.check_name(after, field="cursor")
    limit = limit_arg(
        default=int(config["CHANNEL_LIST_DEFAULT"]), maximum=int(config["CHANNEL_LIST_MAX"])
    )
    return jsonify(
        read_model.listing(
            services().redis,
            after=after,
            limit=limit,
            now_s=time.time(),
        )
    )


@bp.get("/channels/<channel>/messages")
def channel_history(channel: str) -> Response:
    channels.check_name(channel)
    after = request.args.get("after") or None
    if after is not None:
        channels.check_message_id(after, field="after")
    limit = limit_arg(default=read_model.HISTORY_DEFAULT, maximum=read_model.HISTORY_MAX)
    return jsonify(read_model.history(services().redis, channel, after, limit))


@bp.get("/channels/<channel>/events")
def channel_events(channel: str) -> Response:
    channels.check_name(channel)
    last_id = _last_event_id()
    return _stream(
        Selector(channel=channel),
        lambda: channel_cursor.resume_channel(hub().client, channel, last_id),
    )


@bp.get("/events")
def pattern_events() -> Response:
    raw = request.args.get("pattern")
    if not raw:
        raise BadRequest("give a channel pattern, such as ?pattern=news.*", field="pattern")
    pattern = channels.parse_pattern(raw)
    last_id = _last_event_id()
    return _stream(
        Selector(pattern=pattern),
        lambda: channel_cursor.resume_pattern(hub().client, pattern, last_id),
    )


Resume = Callable[[], tuple[Cursor, dict[str, Any] | None]]


def _stream(selector: Selector, resume: Resume) -> Response:
    """A stream that holds a slot until its response is closed; refused before any read."""

    def open_stream() -> Response:
        cursor, gap = resume()
        return _follow(selector, cursor, gap)

    return sse_slots.slotted(open_stream)


def _follow(selector: Selector, cursor: Cursor, gap: dict[str, Any] | None) -> Response:
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(float(current_app.config["SSE_WRITE_TIMEOUT_S"]))
    follower = ChannelStream(
        client=hub().client,
        hub=hub(),
        metrics=METRICS,
        selector=selector,
        cursor=cursor,
        heartbeat_s=current_app.config["SSE_HEARTBEAT_S"],
        gap=gap,
        peer=sock,
    )
    return sse.stream(follower.events())


def _last_event_id() -> str | None:
    given = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or None
    return None if given is None else channels.check_message_id(given.strip())
