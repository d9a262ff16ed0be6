"""The 20-line template the end-to-end scenario measures taskrelay against, kept as it is.

A Flask app and a Celery app in one module, every setting at its default: one task,
a POST that sends it and answers 202 with its id, a GET that answers its state.
The benchmark serves ``app`` with ``gunicorn -w 4`` (sync workers) and runs
``celery -A taskrelay.bench.baseline_template:celery worker``, both against a
Redis of its own; like the template, it reads that Redis's URL at import.
"""

from __future__ import annotations

import os

from celery import Celery
from flask import Flask

URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

app = Flask(__name__)
celery = Celery("template", broker=URL, backend=URL)


@celery.task  # type: ignore[untyped-decorator]
def consume(elem: int) -> int:
    return elem


@app.post("/api/tasks")
def submit() -> tuple[dict[str, str], int]:
    return {"id": consume.delay(1).id}, 202


@app.get("/api/tasks/<task_id>")
def state(task_id: str) -> dict[str, str]:
    return {"state": celery.AsyncResult(task_id).state}
