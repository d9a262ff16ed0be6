"""The clients one web process holds, made once by the application factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from celery import Celery
from flask import Flask, current_app
from redis import Redis

from tasks import redis_urls, task_modules
from tasks.app_factory import create_celery_app
from tasks.celery_ext import atomic_publish
from tasks.connections import WEB_MAX_CONNECTIONS, WEB_RETRIES, make_client

EXTENSION_KEY = "taskrelay"


@dataclass
class Services:
    redis: Redis
    results: Redis
    celery: Celery
    # Whether a task's record and its message can go in one MULTI/EXEC: the broker
    # is taskrelay's transport on the very Redis (and database) that holds records.
    submit_atomically: bool = False
    # Stops what else the process runs (the channel hub), before the clients close.
    on_close: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for stop in self.on_close:
            stop()
        self.redis.close()
        if self.results is not self.redis:
            self.results.close()
        self.celery.close()


def init_app(app: Flask) -> Services:
    """Make the process's clients from the app's settings; close them with ``close()``."""
    redis_url = app.config["REDIS_URL"]
    backend_url = redis_urls.or_default(app.config["CELERY_RESULT_BACKEND"], redis_url)
    celery = create_celery_app(
        redis_url,
        broker_url=redis_urls.or_default(app.config["CELERY_BROKER_URL"], redis_url),
        result_backend=backend_url,
        publish_only=True,
    )
    if app.config.get("CELERY"):
        celery.conf.update(app.config["CELERY"])
    # The registry the API validates against: the same task modules as the workers'.
    task_modules.load_configured(celery.conf)
    client = make_client(redis_url, retries=WEB_RETRIES, max_connections=WEB_MAX_CONNECTIONS)
    results = (
        client
        if backend_url == redis_url
        else make_client(backend_url, retries=WEB_RETRIES, max_connections=WEB_MAX_CONNECTIONS)
    )
    found = Services(
        redis=client,
        results=results,
        celery=celery,
        submit_atomically=atomic_publish.lends_transactions(celery)
        and celery.conf.broker_url == redis_url,
    )
    app.extensions[EXTENSION_KEY] = found
    return found


def services_of(app: Flask) -> Services:
    """The clients of `app`, for code that runs outside a request (the factory)."""
    found: Services = app.extensions[EXTENSION_KEY]
    return found


def services() -> Services:
    """The clients of the app handling the current request."""
    return services_of(current_app)
