"""taskrelay's Flask application: validates requests, enqueues tasks, streams state."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from webapp import api_ops, api_tasks, auth, dashboard, settings
from webapp.errors import register_error_handlers
from webapp.services import init_services


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then TASKRELAY_* environment variables, then overrides."""
    app = Flask(__name__)
    app.config.from_mapping(settings.defaults())
    app.config.from_prefixed_env("TASKRELAY")
    if test_config is not None:
        app.config.from_mapping(test_config)
    logging.basicConfig(level=logging.INFO)

    init_services(app)
    auth.install(app)
    register_error_handlers(app)
    for blueprint in (api_tasks.bp, api_ops.bp, dashboard.bp):
        app.register_blueprint(blueprint)
    return app
