"""The web's gunicorn worker: gevent's own WSGI server, with idle connections bounded.

gunicorn's ``gevent`` worker parses requests with gunicorn's parser and writes a
response's headers and body in two socket writes; its ``gevent_pywsgi`` worker hands
the connection to gevent's ``pywsgi`` server, which writes them together and parses
with less Python per request: about a quarter less CPU per ``POST /api/tasks``
(docs/benchmarks.md). What ``pywsgi`` lacks is gunicorn's keep-alive bound: a client
could hold an idle connection, and with it a slot of ``worker_connections``, for as
long as it likes. The handler here closes a connection that sends no request line
within gunicorn's ``keepalive`` seconds, as gunicorn's own gevent worker does.

``pywsgi`` also sends a response's head and the first part of its body in two socket
writes; for an API answer of a few hundred bytes that is a second system call and a
second TCP segment (a second wakeup of the client) for every request. The handler here
sends the two together when that part of the body is small.

More costs of every request go too: the headers are read by ``webapp.request_head``
instead of the ``email`` package's parser, and become the WSGI environ's items
directly rather than as lines formatted and split again; the usual HTTP versions are
accepted without parsing their numbers; and gunicorn's access-log record (two
datetimes, a response object, the headers listed) is built only when the access log
is on.
"""

from __future__ import annotations

from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from webapp import pool_check, request_head

# A body part up to this size goes out in one write with the response's head; a
# larger one is sent on its own, as pywsgi does, rather than copied.
HEAD_AND_BODY_MAX_BYTES = 64 * 1024
# The versions nearly every request names, which pywsgi accepts.
_USUAL_VERSIONS = frozenset({"HTTP/1.1", "HTTP/1.0"})


class IdleBoundHandler(PyWSGIHandler):  # type: ignore[misc]
    # Set per worker from gunicorn's ``keepalive`` setting (see Worker).
    idle_timeout_s: float = 5.0
    # The response's head while pywsgi writes it, until the body's first part joins it.
    _held_head: bytearray | None = None
    _holding_head = False
    # The connection's idle bound while a request line is awaited (read_requestline).
    _idle_timer: gevent.Timeout | None = None

    def MessageClass(self, stream: Any, *_: Any) -> request_head.RequestHead:  # noqa: N802
        # pywsgi's name for what reads the header lines after the request line.
        return request_head.read(stream)

    def _headers(self) -> Any:
        # pywsgi's environ items of the header fields, which it gets by formatting
        # each field as a line and splitting it again.
        return self.headers.environ_items()

    def _check_http_version(self) -> bool:
        # pywsgi parses the version's numbers for every request.
        return self.request_version in _USUAL_VERSIONS or bool(super()._check_http_version())

    def log_request(self) -> None:
        # gunicorn builds the record, then asks its logger whether the log is on.
        if self.server.log.access_log_enabled:
            super().log_request()

    def get_environ(self) -> Any:
        environ = super().get_environ()
        # gunicorn's own workers name the client's socket so; the SSE streams look
        # there to bound their writes and to see a client that went away.
        environ["gunicorn.socket"] = self.socket
        return environ

    def _write_with_headers(self, data: bytes | bytearray) -> None:
        # pywsgi sends the head (one _sendall), then the body's first part (another,
        # unless that part is empty): hold the first to send with the second.
        self._holding_head = len(data) <= HEAD_AND_BODY_MAX_BYTES
        try:
            super()._write_with_headers(data)
        finally:
            self._holding_head = False
            head, self._held_head = self._held_head, None
            if head is not None:  # an empty first part: nothing came to join it
                super()._sendall(head)

    def _sendall(self, data: bytes | bytearray) -> None:
        if self._holding_head:
            if self._held_head is None:
                self._held_head = bytearray(data)
                return
            data, self._held_head = self._held_head + data, None
        super()._sendall(data)

    def read_requestline(self) -> Any:
        # pywsgi treats a socket error while reading the request line as a closed
        # connection: the greenlet ends and the connection is closed. One timer per
        # connection (a handler serves one), armed again for each request line.
        if self._idle_timer is None:
            self._idle_timer = gevent.Timeout(
                self.idle_timeout_s, TimeoutError("idle keep-alive connection")
            )
        self._idle_timer.start()
        try:
            return super().read_requestline()
        finally:
            self._idle_timer.cancel()


class Worker(GeventPyWSGIWorker):  # type: ignore[misc]
    def init_process(self) -> None:
        self.wsgi_handler = type(
            "Handler", (IdleBoundHandler,), {"idle_timeout_s": float(self.cfg.keepalive)}
        )
        pool_check.install()
        super().init_process()
