"""Channels over HTTP: publish, read history and follow live, through one hub per process."""

from __future__ import annotations

from flask import Flask

from webapp.channels import admitted, api
from webapp.channels.hub import DEFAULT_BUFFER_MESSAGES, Hub
from webapp.channels.metrics import METRICS
from webapp.idle_reader import READER_IDLE_GRACE_S
from webapp.services import services_of


def init_app(app: Flask) -> None:
    """Make the hub (it listens while it has subscribers), stop it with the services, serve."""
    app.config.setdefault("SSE_BUFFER_MESSAGES", DEFAULT_BUFFER_MESSAGES)
    app.config.setdefault("SSE_WRITE_TIMEOUT_S", api.SSE_WRITE_TIMEOUT_S)
    app.config.setdefault("SSE_READER_IDLE_S", READER_IDLE_GRACE_S)
    _check_bounds(app)
    hub = Hub(
        app.config["REDIS_URL"],
        METRICS,
        pool_connections=int(app.config["SSE_REDIS_CONNECTIONS"]),
        pool_wait_s=float(app.config["SSE_REDIS_WAIT_S"]),
        buffer_messages=int(app.config["SSE_BUFFER_MESSAGES"]),
        idle_grace_s=float(app.config["SSE_READER_IDLE_S"]),
    )
    app.extensions[api.HUB_EXTENSION_KEY] = hub
    admitted.init_app(app)
    # The hub's thread stops before the clients it reads with are closed.
    services_of(app).on_close.append(hub.stop)
    app.register_blueprint(api.bp)


def _check_bounds(app: Flask) -> None:
    """Refuse at start settings that contradict each other, rather than trim surprisingly."""
    config = app.config
    for name in (
        "CHANNEL_RETENTION",
        "CHANNEL_RETENTION_BYTES",
        "CHANNEL_IDLE_TTL_S",
        "CHANNEL_MAX_CHANNELS",
        "CHANNEL_MESSAGE_MAX_BYTES",
        "CHANNEL_RECENT_MESSAGES",
        "SSE_MAX_STREAMS",
        "SSE_MAX_STREAMS_PER_CLIENT",
    ):
        if int(config[name]) < 1:
            raise ValueError(f"TASKRELAY_{name} must be at least 1; got {config[name]!r}")
    if int(config["CHANNEL_RETENTION_BYTES"]) < int(config["CHANNEL_MESSAGE_MAX_BYTES"]):
        raise ValueError(
            "TASKRELAY_CHANNEL_RETENTION_BYTES must hold at least one message of "
            "TASKRELAY_CHANNEL_MESSAGE_MAX_BYTES"
        )
