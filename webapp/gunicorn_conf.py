"""gunicorn settings for the web role, shared by ``taskrelay up`` and the compose file.

Used as ``gunicorn -c python:webapp.gunicorn_conf 'webapp:create_app()'``.
"""

import os
import signal
from typing import Any

bind = os.environ.get("TASKRELAY_WEB_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("TASKRELAY_WEB_WORKERS", "2"))
# gevent, because every Server-Sent Events client holds its connection open: a
# greenlet per stream instead of a thread, so one worker holds up to
# worker_connections streams where gthread held `threads`. Measured against
# gthread in docs/decisions.md; TASKRELAY_WEB_WORKER_CLASS=gthread switches back.
# The worker serves through gevent's pywsgi (webapp/gunicorn_worker.py), which
# costs less CPU per request than gunicorn's own gevent worker.
GEVENT_WORKER = "webapp.gunicorn_worker.Worker"
worker_class = os.environ.get("TASKRELAY_WEB_WORKER_CLASS", GEVENT_WORKER)
worker_connections = int(os.environ.get("TASKRELAY_WEB_CONNECTIONS", "1000"))
threads = int(os.environ.get("TASKRELAY_WEB_THREADS", "64"))
# An idle keep-alive connection is closed after this many seconds.
keepalive = 5
# SIGTERM lets open requests finish for this long before workers are killed.
graceful_timeout = 10
timeout = 60
accesslog = os.environ.get("TASKRELAY_WEB_ACCESS_LOG") or None
errorlog = "-"


# The app extensions (app.extensions keys) that feed SSE streams; each has a
# request_stop() that ends its streams with a reconnect hint.
STREAM_SOURCES = ("taskrelay.hub", "taskrelay.task_feed")


def post_worker_init(worker: Any) -> None:
    """On SIGTERM, end this worker's SSE streams at once, each with a reconnect hint.

    Without this a worker waits its whole grace period for streams that never end
    by themselves; clients resume elsewhere with Last-Event-ID and lose nothing.
    """
    previous = signal.getsignal(signal.SIGTERM)

    def end_streams(signum: int, frame: Any) -> None:
        extensions = getattr(worker.wsgi, "extensions", {})
        # The channel hub and the task feed: each feeds this worker's SSE streams.
        for name in STREAM_SOURCES:
            source = extensions.get(name)
            if source is not None:
                source.request_stop()  # never blocks: under gevent a handler may not
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, end_streams)
