"""gunicorn settings for the web role, shared by ``taskrelay up`` and the compose file.

Used as ``gunicorn -c python:webapp.gunicorn_conf 'webapp:create_app()'``.
"""

import errno
import os
import signal
import socket
import sys
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
# Each worker listens on a socket of its own (SO_REUSEPORT), and the kernel spreads
# new connections over them. On one shared socket the worker that wakes first accepts
# every connection waiting: a client's ten keep-alive connections all landed on one
# worker in half the tries, which then served every request on one core while the
# other idled (docs/decisions.md). TASKRELAY_WEB_REUSE_PORT=0 shares one socket.
reuse_port = os.environ.get("TASKRELAY_WEB_REUSE_PORT", "1") != "0"
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


def on_starting(server: Any) -> None:
    """Refuse an address that something already listens on.

    With SO_REUSEPORT the workers' binds succeed next to any other listener of the
    same user that set it too (a web left running from an earlier start), and the
    two would share the port's connections without a word. A plain bind fails there.
    """
    # The setting gunicorn applies, whether it came from here or its command line.
    if not server.cfg.reuse_port:
        return
    for address in server.cfg.address:
        if isinstance(address, tuple):
            _refuse_if_listened_on(address)


def _refuse_if_listened_on(address: tuple[str, int]) -> None:
    host, port = address[:2]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As gunicorn binds (a socket in TIME_WAIT does not count), without SO_REUSEPORT.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            sys.exit(f"taskrelay web: {host}:{port} is in use by another process")
        raise
    finally:
        probe.close()


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
