"""The worker's Celery app: ``celery -A tasks worker`` finds ``app`` here.

Only worker processes (and Flower) import this module. It is the one place that
adds taskrelay's bootsteps and loads the task modules for a worker; the web and
the CLI build their own publish-only app (``tasks.app_factory``) instead.
"""

from tasks import task_modules
from tasks.app_factory import create_celery_app
from tasks.celery_ext.steps import add_worker_steps
from tasks.celery_ext.task_log import quiet_per_task_lines

app = create_celery_app()
app.set_default()
add_worker_steps(app)
quiet_per_task_lines(app)
task_modules.load_configured(app.conf)
