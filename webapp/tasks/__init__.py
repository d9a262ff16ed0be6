"""Tasks over HTTP: submit, read, follow and revoke tasks; the registry; dead letters;
the task list, its live feed, workers and stats."""

from __future__ import annotations

from flask import Flask

from webapp.idle_reader import READER_IDLE_GRACE_S
from webapp.services import services_of
from webapp.tasks import api, feed


def init_app(app: Flask) -> None:
    """Make the task feed (it reads while streams are open), stop it with the services."""
    idle_grace_s = float(app.config.setdefault("SSE_READER_IDLE_S", READER_IDLE_GRACE_S))
    task_feed = feed.TaskFeed(app.config["REDIS_URL"], idle_grace_s=idle_grace_s)
    app.extensions[feed.EXTENSION_KEY] = task_feed
    services_of(app).on_close.append(task_feed.stop)
    app.register_blueprint(api.bp)
