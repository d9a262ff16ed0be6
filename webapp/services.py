"""The clients one web process holds, made once by the application factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from flask import Flask, current_app
from redis import Redis

from tasks import redis_urls, task_modules
from tasks.app_factory import create_celery_app
from tasks.celery_ext import atomic_publish
from tasks.celery_ext.bound_producers import BoundProducers
from tasks.connections import (
    WEB_SOCKET_CONNECT_TIMEOUT_S,
    WEB_SOCKET_TIMEOUT_S,
    make_web_client,
)
from webapp import settings

EXTENSION_KEY = "taskrelay"


@dataclass
class Services:
    redis: Redis
    results: Redis
    celery: Celery
    # Whether a task's record and its message can go in one MULTI/EXEC: the broker
    # is taskrelay's transport on the very Redis (and database) that holds records.
    submit_atomically: bool = False
    # Countdown/eta tasks pending in all, past which a delayed submit is refused.
    max_delayed_tasks: int = settings.MAX_DELAYED_TASKS
    # Queues this process has declared on the broker (webapp/atomic_send.py).
    declared_queues: set[str] = field(default_factory=set)
    # Stops what else the process runs (the channel hub), before the clients close.
    on_close: list[Callable[[], None]] = field(default_factory=list)
    # Producers kept bound to the broker between publishes (accepting a task).
    producers: BoundProducers = field(init=False)

    def __post_init__(self) -> None:
        self.producers = BoundProducers(self.celery)

    def close(self) -> None:
        for stop in self.on_close:
            stop()
        self.producers.close()
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
    celery.conf.update(_fail_fast_settings(celery))
    if app.config.get("CELERY"):
        celery.conf.update(app.config["CELERY"])
    # The registry the API validates against: the same task modules as the workers'.
    task_modules.load_configured(celery.conf)
    client = make_web_client(redis_url)
    results = client if backend_url == redis_url else make_web_client(backend_url)
    found = Services(
        redis=client,
        results=results,
        celery=celery,
        submit_atomically=atomic_publish.lends_transactions(celery)
        and celery.conf.broker_url == redis_url,
        max_delayed_tasks=int(app.config["MAX_DELAYED_TASKS"]),
    )
    app.extensions[EXTENSION_KEY] = found
    return found


# Publishing tries twice, 0.2 s apart: with WEB_SOCKET_TIMEOUT_S per try, a
# publish to a frozen broker stays within connections.WEB_STALL_BOUND_S.
WEB_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0.2,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
# A result-backend write from the web (a revoke) gives up after this many seconds.
WEB_RESULT_RETRY_S = 1.0


def _fail_fast_settings(celery: Celery) -> dict[str, Any]:
    """The web's Celery timeouts: short, where the workers' are long (celeryconfig.py)."""
    settings: dict[str, Any] = {
        "task_publish_retry_policy": WEB_PUBLISH_RETRY_POLICY,
        "broker_connection_timeout": WEB_SOCKET_CONNECT_TIMEOUT_S,
        "redis_socket_timeout": WEB_SOCKET_TIMEOUT_S,
        "redis_socket_connect_timeout": WEB_SOCKET_CONNECT_TIMEOUT_S,
        "redis_retry_on_timeout": False,
        "result_backend_transport_options": {
            **celery.conf.result_backend_transport_options,
            "retry_policy": {"timeout": WEB_RESULT_RETRY_S},
            "socket_connect_timeout": WEB_SOCKET_CONNECT_TIMEOUT_S,
        },
    }
    if redis_urls.is_redis_broker(celery.conf.broker_url):
        settings["broker_transport_options"] = {
            **celery.conf.broker_transport_options,
            "socket_timeout": WEB_SOCKET_TIMEOUT_S,
            "socket_connect_timeout": WEB_SOCKET_CONNECT_TIMEOUT_S,
        }
    return settings


def services_of(app: Flask) -> Services:
    """The clients of `app`, for code that runs outside a request (the factory)."""
    found: Services = app.extensions[EXTENSION_KEY]
    return found


def services() -> Services:
    """The clients of the app handling the current request."""
    return services_of(current_app)
