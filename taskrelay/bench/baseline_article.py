"""The article's producer-consumer demo: a Flask ``/prodcons`` that LPUSHes, a BLPOP loop.

``create_app()`` is served by the same gunicorn configuration as taskrelay's web;
``python -m taskrelay.bench.baseline_article REDIS_URL`` is the article's listener,
which stops at a sentinel and leaves its counts in Redis for the benchmark.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time

import redis
from flask import Flask, redirect
from werkzeug.wrappers import Response

QUEUE = "task:prodcons:queue"
# Pushed once per listener after the work; a listener that pops it reports and exits.
SENTINEL = "stop"
REPORTS = "bench:raw:reports"

logger = logging.getLogger(__name__)


def create_app() -> Flask:
    app = Flask(__name__)
    client = redis.Redis.from_url(os.environ["REDIS_URL"])

    @app.get("/")
    def index() -> str:
        return '<a href="/prodcons">prodcons</a>'

    @app.get("/prodcons")
    def prodcons() -> Response:
        elem = random.randrange(10)
        client.lpush(QUEUE, elem)
        logger.info("lpush %s -- %s", QUEUE, elem)
        return redirect("/")

    return app


def listen(url: str) -> None:
    """Pop until the sentinel, then record how many items arrived between which times."""
    client = redis.Redis.from_url(url)
    count, first, last = 0, 0.0, 0.0
    while True:
        popped = client.blpop([QUEUE], timeout=0)
        if popped is None:
            continue
        elem = popped[1]
        if elem == SENTINEL.encode():
            break
        last = time.time()
        first = first or last
        count += 1
        print("Task get", elem)
    client.rpush(REPORTS, json.dumps({"count": count, "first": first, "last": last}))


if __name__ == "__main__":
    listen(sys.argv[1])
