"""The least a POST that sends a Celery task can cost in taskrelay's web: a reference row.

``create_app()`` is taskrelay's web with one more route, ``POST /api/floor``. It sends
the built-in ``noop`` task as ``POST /api/tasks`` sends a task: Celery's own message
builder and producer, in the MULTI/EXEC that the process's ready requests share
(webapp/atomic_send.py). Then it answers 202 with the task's id. It does nothing else:
no body read or checked, no record, no index, no links. The HTTP submit scenario serves
it as taskrelay's web is served. What ``POST /api/tasks`` costs beyond this row is
taskrelay's own work. What this row costs beyond the article's ``/prodcons`` is
Flask's request around Celery's message, which every accepted task carries.
"""

from __future__ import annotations

import uuid

from flask import Flask

from tasks import registry
from webapp import atomic_send
from webapp import create_app as create_taskrelay_app
from webapp.services import services_of

PATH = "/api/floor"
TASK = "noop"


def create_app() -> Flask:
    app = create_taskrelay_app()
    spec = registry.lookup(TASK)
    if spec is None:
        raise RuntimeError(f"the built-in task {TASK!r} is not registered")

    def send_alone() -> tuple[dict[str, str], int]:
        task_id = str(uuid.uuid4())
        atomic_send.send(
            services_of(app),
            spec.celery_name,
            task_id=task_id,
            kwargs={},
            queue=spec.queue,
            with_commands=lambda pipe: None,
        )
        return {"id": task_id}, 202

    app.add_url_rule(PATH, "floor", send_alone, methods=["POST"])
    return app
