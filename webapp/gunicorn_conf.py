"""gunicorn settings for the web role, shared by ``taskrelay up`` and the compose file.

Used as ``gunicorn -c python:webapp.gunicorn_conf 'webapp:create_app()'``.
"""

import os

bind = os.environ.get("TASKRELAY_WEB_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("TASKRELAY_WEB_WORKERS", "2"))
# Threads, because every Server-Sent Events client holds a connection open for
# long; see docs/decisions.md for the worker class and its measured limits.
worker_class = "gthread"
threads = int(os.environ.get("TASKRELAY_WEB_THREADS", "64"))
# SIGTERM lets open requests finish for this long before workers are killed.
graceful_timeout = 10
timeout = 60
keepalive = 5
accesslog = os.environ.get("TASKRELAY_WEB_ACCESS_LOG") or None
errorlog = "-"
