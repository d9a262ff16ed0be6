"""taskrelay's Celery application and tasks; ``celery -A tasks`` finds ``app`` here."""

from tasks.celery_app import create_celery_app
from tasks.leases import LeaseRenewal
from tasks.liveness import LivenessBeacon
from tasks.relay_sweeper import RelaySweeper

app = create_celery_app()
app.set_default()
app.steps["worker"].add(RelaySweeper)
app.steps["consumer"].add(LivenessBeacon)
app.steps["consumer"].add(LeaseRenewal)

# Importing the task modules declares their tasks on every Celery app.
from tasks import jobs, relay  # noqa: E402

__all__ = ["app", "create_celery_app", "jobs", "relay"]
