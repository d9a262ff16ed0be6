"""Builds the Celery application from ``celeryconfig``."""

from __future__ import annotations

from typing import Any

from celery import Celery

import celeryconfig
from tasks import redis_urls
from tasks.celery_ext import sentinel_backend
from tasks.celery_ext.result_backend import BACKEND_PATH, PUBLISH_ONLY_BACKEND_PATH


def create_celery_app(
    redis_url: str | None = None,
    *,
    broker_url: str | None = None,
    result_backend: str | None = None,
    publish_only: bool = False,
    **overrides: Any,
) -> Celery:
    """A Celery app configured from the environment, then from the arguments.

    ``redis_url`` points taskrelay's own keys, and unless they are given too the
    broker and the results, at one Redis. A broker given here brings the
    settings that its kind of broker needs (``celeryconfig.broker_dependent_settings``).
    ``publish_only`` is for the web, which sends tasks and reads results by key.
    """
    backend_url = result_backend or redis_url or celeryconfig.result_backend
    app = Celery("taskrelay", set_as_current=False)
    app.config_from_object("celeryconfig")
    if redis_url is not None:
        app.conf.update(taskrelay_redis_url=redis_url)
    broker = broker_url or redis_url
    if broker is not None:
        app.conf.update(broker_url=broker, **celeryconfig.broker_dependent_settings(broker))
    if publish_only and redis_urls.is_redis_broker(app.conf.broker_url):
        # kombu batches publishes (and so lends the web the MULTI/EXEC that holds a
        # task's record and message together, tasks/celery_ext/atomic_publish.py)
        # only when a timed-out pipeline is not sent again, as it could then apply
        # twice. The web answers 503 instead, and the client retries, safely with
        # an Idempotency-Key.
        app.conf.broker_transport_options = {
            **app.conf.broker_transport_options,
            "retry_on_timeout": False,
        }
    backend = _backend(backend_url, publish_only)
    app.conf.update(result_backend=backend or backend_url, **overrides)
    if backend is not None and "result_backend" not in overrides:
        # Celery's settings prefer a CELERY_RESULT_BACKEND environment variable to
        # any configured value, which would silently swap ours for its plain Redis
        # backend; backend_cls comes before both.
        app.backend_cls = backend
    return app


def _backend(url: str, publish_only: bool) -> str | None:
    """Celery's "class+url" form, which picks our Redis backend for a Redis URL."""
    if redis_urls.is_sentinel(url):
        path = (
            sentinel_backend.PUBLISH_ONLY_BACKEND_PATH
            if publish_only
            else sentinel_backend.BACKEND_PATH
        )
        return f"{path}+{url}"
    if not redis_urls.is_direct_redis(url):
        return None
    return f"{PUBLISH_ONLY_BACKEND_PATH if publish_only else BACKEND_PATH}+{url}"
