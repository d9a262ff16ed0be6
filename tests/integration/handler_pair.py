"""The web's HTTP handler (webapp.gunicorn_worker.IdleBoundHandler) serving one end of a
socket pair, for tests that look at what it reads and writes byte for byte."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.socket
from gevent.pywsgi import WSGIServer
from gunicorn.config import Config
from gunicorn.glogging import Logger

from webapp.gunicorn_worker import IdleBoundHandler

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
TIMEOUT_S = 5


def serve_one_connection(
    app: App,
    request: bytes,
    *,
    kind: int = socket.SOCK_STREAM,
    handler_class: type = IdleBoundHandler,
    config: Config | None = None,
) -> list[bytes]:
    """Send ``request`` (then end the client's writes) and read what the handler sends
    until it closes the connection: one item per ``recv`` (per write, on SOCK_SEQPACKET)."""
    server = WSGIServer(("127.0.0.1", 0), app)
    # gunicorn's logger, as in the worker: the access log off unless ``config`` turns it on.
    server.log = Logger(config or Config())
    served, client = gevent.socket.socketpair(socket.AF_UNIX, kind)
    handler = gevent.spawn(lambda: handler_class(served, ("local", 0), server).handle())
    try:
        client.sendall(request)
        if kind == socket.SOCK_STREAM:
            client.shutdown(socket.SHUT_WR)
        received = []
        with gevent.Timeout(TIMEOUT_S):
            while chunk := client.recv(1 << 20):
                received.append(chunk)
        handler.join(timeout=TIMEOUT_S)
        assert handler.successful(), handler.exception
        return received
    finally:
        handler.kill()
        client.close()
        served.close()
