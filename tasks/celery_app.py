"""Builds the Celery application from ``celeryconfig``."""

from __future__ import annotations

from typing import Any

from celery import Celery


def create_celery_app(redis_url: str | None = None, **overrides: Any) -> Celery:
    """A Celery app configured from the environment.

    ``redis_url`` points broker, results and taskrelay's own keys at one Redis,
    which is what tests and the web's own configuration need.
    """
    app = Celery("taskrelay", set_as_current=False)
    app.config_from_object("celeryconfig")
    if redis_url is not None:
        app.conf.update(
            taskrelay_redis_url=redis_url, broker_url=redis_url, result_backend=redis_url
        )
    app.conf.update(overrides)
    return app
