"""taskrelay's Flask application: validates requests, enqueues tasks, streams state."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from webapp import auth, limits, settings
from webapp.channels import api as api_channels
from webapp.dashboard import views as dashboard
from webapp.errors import register_error_handlers
from webapp.ops import api as api_ops
from webapp.ops import metrics as api_metrics
from webapp.ops import stats as api_stats
from webapp.services import init_services
from webapp.tasks import api as api_tasks


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then TASKRELAY_* environment variables, then overrides."""
    app = Flask(__name__)
    app.config.from_mapping(settings.defaults())
    app.config.from_prefixed_env("TASKRELAY")
    if test_config is not None:
        app.config.from_mapping(test_config)
    logging.basicConfig(level=logging.INFO)

    services = init_services(app)
    services.on_close.append(api_channels.init_hub(app).stop)
    auth.install(app)
    limits.install(app)
    register_error_handlers(app)
    for blueprint in (api_tasks.bp, api_channels.bp, api_ops.bp, api_metrics.bp, dashboard.bp):
        app.register_blueprint(blueprint)
    api_stats.install(app)
    return app
