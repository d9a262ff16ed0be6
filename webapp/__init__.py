"""taskrelay's Flask application: validates requests, enqueues tasks, streams state."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from flask import Flask

from webapp import (
    auth,
    channels,
    dashboard,
    durable_accept,
    errors,
    headers,
    limits,
    memory_guard,
    ops,
    schedules,
    services,
    settings,
    sse_slots,
    tasks,
    workflows,
)
from webapp.json_provider import OrjsonProvider


class Extension(Protocol):
    def init_app(self, app: Flask) -> object: ...


# Each is set up on the app by its init_app(app), Flask's extension convention, in
# this order: the clients first, as the rest use them, and the replica wait that
# they allow; the security headers for every answer; the token check before the
# rate limit, so a refused token is never counted; then the areas' blueprints.
EXTENSIONS: tuple[Extension, ...] = (
    services,
    durable_accept,
    errors,
    headers,
    auth,
    limits,
    sse_slots,
    memory_guard,
    tasks,
    channels,
    schedules,
    workflows,
    ops,
    dashboard,
)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then TASKRELAY_* environment variables, then overrides."""
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.from_mapping(settings.defaults())
    settings.load_environment(app.config)
    if test_config is not None:
        app.config.from_mapping(test_config)
    logging.basicConfig(level=logging.INFO)
    for extension in EXTENSIONS:
        extension.init_app(app)
    return app
