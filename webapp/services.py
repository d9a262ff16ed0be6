"""The clients one web process holds, made once by the application factory."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import Flask, current_app
from redis import Redis

from tasks import create_celery_app
from tasks.connections import WEB_RETRIES, make_client

EXTENSION_KEY = "taskrelay"


@dataclass
class Services:
    redis: Redis
    results: Redis
    celery: Celery

    def close(self) -> None:
        self.redis.close()
        if self.results is not self.redis:
            self.results.close()
        self.celery.close()


def init_services(app: Flask) -> Services:
    celery = create_celery_app(app.config["REDIS_URL"])
    if app.config.get("CELERY"):
        celery.conf.update(app.config["CELERY"])
    client = make_client(app.config["REDIS_URL"], retries=WEB_RETRIES)
    backend_url = celery.conf.result_backend
    results = (
        client
        if backend_url == app.config["REDIS_URL"]
        else make_client(backend_url, retries=WEB_RETRIES)
    )
    services = Services(redis=client, results=results, celery=celery)
    app.extensions[EXTENSION_KEY] = services
    return services


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION_KEY]
    return found
