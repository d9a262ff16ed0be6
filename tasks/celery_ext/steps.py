"""The bootsteps taskrelay adds to a Celery worker, in one list."""

from __future__ import annotations

from celery import Celery

from tasks.celery_ext.event_batching import EventBufferLimit
from tasks.celery_ext.inline_pool import KeptHeartbeat
from tasks.celery_ext.leases import LeaseRenewal
from tasks.celery_ext.liveness import LivenessBeacon
from tasks.celery_ext.relay_sweeper import RelaySweeper
from tasks.celery_ext.result_pipe import ResultPipeStep


def add_worker_steps(app: Celery) -> None:
    app.steps["worker"].add(RelaySweeper)
    app.steps["consumer"].add(LivenessBeacon)
    app.steps["consumer"].add(LeaseRenewal)
    app.steps["consumer"].add(KeptHeartbeat)
    app.steps["consumer"].add(ResultPipeStep)
    app.steps["consumer"].add(EventBufferLimit)
