"""The baseline Celery app: the usual Flask+Celery template, every setting left at its default.

Prefork with one process per core, prefetch multiplier 4, early acknowledgement,
results in Redis, no task events. Run as ``celery -A taskrelay.bench.baseline_celery
worker``; like the template it reads its URLs from the environment at import.
"""

from __future__ import annotations

import os

from celery import Celery

TASK_NAME = "bench.noop"

app = Celery(
    "baseline",
    broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/0"),
)


@app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
def noop() -> None:
    """Do nothing: the benchmark's unit of work."""
