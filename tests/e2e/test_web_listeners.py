"""The web's workers each listen on the port, so keep-alive clients spread over them."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psutil

from taskrelay import roles
from taskrelay.processes import Child
from tests.support import log_tail, stop, wait_until

# Enough that all of them landing on one of two workers by chance is one in 30,000.
CONNECTIONS = 16
EXIT_TIMEOUT_S = 30


def tcp_connections_on(port: int, status: str) -> list[psutil._common.sconn]:
    return [
        connection
        for connection in psutil.net_connections(kind="tcp")
        if connection.laddr and connection.laddr.port == port and connection.status == status
    ]


@contextmanager
def keep_alive_clients(host: str, port: int, count: int) -> Iterator[None]:
    """``count`` connections, each answered once and then held open."""
    with ExitStack() as held:
        for _ in range(count):
            sock = held.enter_context(socket.create_connection((host, port), timeout=5))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: taskrelay\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        yield


def test_every_web_worker_listens_and_keep_alive_connections_spread_over_them(web: str) -> None:
    url = httpx.URL(web)
    assert url.host is not None and url.port is not None
    listeners = {connection.pid for connection in tcp_connections_on(url.port, psutil.CONN_LISTEN)}
    assert len(listeners) == 2  # the two workers (TASKRELAY_WEB_WORKERS), not the master
    with keep_alive_clients(url.host, url.port, CONNECTIONS):
        served_by = Counter(
            connection.pid for connection in tcp_connections_on(url.port, psutil.CONN_ESTABLISHED)
        )
    # On one shared socket the first worker to wake took them all, in about half the tries.
    assert set(served_by) == listeners
    assert sum(served_by.values()) == CONNECTIONS


def test_a_second_web_on_a_port_in_use_refuses_to_start(web: str, log_dir: Path) -> None:
    url = httpx.URL(web)
    second = Child(
        "web-second",
        roles.web_argv(f"{url.host}:{url.port}"),
        log_dir / "web-second.log",
        {"REDIS_URL": "redis://127.0.0.1:1/0", "PYTHONUNBUFFERED": "1"},
    )
    second.start()
    try:
        wait_until(
            lambda: second.exit_code() is not None,
            timeout_s=EXIT_TIMEOUT_S,
            what="the second web to exit",
        )
    finally:
        stop(second)
    assert second.exit_code() != 0
    assert "is in use by another process" in log_tail(second.log_path)
    assert httpx.get(f"{web}/healthz", timeout=5).status_code == 200
