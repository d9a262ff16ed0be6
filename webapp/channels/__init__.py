"""Channels over HTTP: publish, read history and follow live, through one hub per process."""

from __future__ import annotations

from flask import Flask

from tasks.channels import log as channel_log
from webapp.channels import api
from webapp.channels.hub import DEFAULT_BUFFER_MESSAGES, Hub
from webapp.channels.metrics import METRICS
from webapp.services import services_of


def init_app(app: Flask) -> None:
    """Make the hub (it starts with its first subscriber), stop it with the services, serve."""
    app.config.setdefault("CHANNEL_RETENTION", channel_log.DEFAULT_RETENTION)
    app.config.setdefault("SSE_BUFFER_MESSAGES", DEFAULT_BUFFER_MESSAGES)
    app.config.setdefault("SSE_WRITE_TIMEOUT_S", api.SSE_WRITE_TIMEOUT_S)
    hub = Hub(
        app.config["REDIS_URL"], METRICS, buffer_messages=int(app.config["SSE_BUFFER_MESSAGES"])
    )
    app.extensions[api.HUB_EXTENSION_KEY] = hub
    # The hub's thread stops before the clients it reads with are closed.
    services_of(app).on_close.append(hub.stop)
    app.register_blueprint(api.bp)
