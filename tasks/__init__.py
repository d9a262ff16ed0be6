"""taskrelay's Celery application and tasks; ``celery -A tasks`` finds ``app`` here."""

from tasks.celery_app import create_celery_app
from tasks.liveness import LivenessBeacon

app = create_celery_app()
app.set_default()
app.steps["worker"].add(LivenessBeacon)

# Importing the task modules declares their tasks on every Celery app.
from tasks import jobs  # noqa: E402

__all__ = ["app", "create_celery_app", "jobs"]
