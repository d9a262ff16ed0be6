"""The web's gunicorn worker: gevent's own WSGI server, with idle connections bounded.

gunicorn's ``gevent`` worker parses requests with gunicorn's parser and writes a
response's headers and body in two socket writes; its ``gevent_pywsgi`` worker hands
the connection to gevent's ``pywsgi`` server, which writes them together and parses
with less Python per request: about a quarter less CPU per ``POST /api/tasks``
(docs/benchmarks.md). What ``pywsgi`` lacks is gunicorn's keep-alive bound: a client
could hold an idle connection, and with it a slot of ``worker_connections``, for as
long as it likes. The handler here closes a connection that sends no request line
within gunicorn's ``keepalive`` seconds, as gunicorn's own gevent worker does.
"""

from __future__ import annotations

from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from webapp import pool_check


class IdleBoundHandler(PyWSGIHandler):  # type: ignore[misc]
    # Set per worker from gunicorn's ``keepalive`` setting (see Worker).
    idle_timeout_s: float = 5.0

    def get_environ(self) -> Any:
        environ = super().get_environ()
        # gunicorn's own workers name the client's socket so; the SSE streams look
        # there to bound their writes and to see a client that went away.
        environ["gunicorn.socket"] = self.socket
        return environ

    def read_requestline(self) -> Any:
        # pywsgi treats a socket error while reading the request line as a closed
        # connection: the greenlet ends and the connection is closed.
        with gevent.Timeout(self.idle_timeout_s, TimeoutError("idle keep-alive connection")):
            return super().read_requestline()


class Worker(GeventPyWSGIWorker):  # type: ignore[misc]
    def init_process(self) -> None:
        self.wsgi_handler = type(
            "Handler", (IdleBoundHandler,), {"idle_timeout_s": float(self.cfg.keepalive)}
        )
        pool_check.install()
        super().init_process()
