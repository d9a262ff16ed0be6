"""The worker's log without a line per task, unless asked for.

At ``--loglevel INFO`` Celery writes two lines for every task ("received" from the
main process, "succeeded in" from the pool child), and decides once, when it builds
its strategies and tracers, whether to format them at all. Those two lines cost a
no-op task about a fifth of its worker CPU (docs/benchmarks.md), while every task's
states, worker and timings are in its record, the dashboard and Flower. So their
three loggers stay at WARNING, and the worker's own INFO lines (connected, ready,
restarts) remain; ``TASKRELAY_LOG_EACH_TASK=1`` brings the per-task lines back.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger

# The loggers of Celery's per-task INFO lines: received, succeeded/failed, and
# the request's own (revoked, expired, accepted).
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace", "celery.worker.request")


def quiet_per_task_lines(app: Celery) -> None:
    """Keep Celery's per-task lines out of this worker's log, unless the app asks for them."""

    def on_logging_set_up(**_: Any) -> None:
        if app.conf.taskrelay_log_each_task:
            return
        for name in PER_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)

    # weak=False: the receiver is a closure that nothing else holds.
    after_setup_logger.connect(on_logging_set_up, weak=False)
