"""redis-py's check of a pooled connection, without a trip through gevent's hub.

Before it lends a pooled connection, redis-py asks whether the socket holds unread
data (a reply left behind, or the server's close) with a zero-timeout
``select.poll``. In the web's gevent worker that poll is gevent's cooperative one,
which goes through the hub: about 6 % of the CPU of a ``POST /api/tasks``
(docs/benchmarks.md). A zero-timeout poll never blocks, so the operating system's
own poll answers the same question without the hub. Waits with a timeout (a
pub/sub read of an SSE stream) keep gevent's poll, which lets other greenlets run.

The check is redis-py's ``_socket_can_read`` in its hiredis parser, a private
function; if a redis-py release renames it, this does nothing and the pool keeps
its own check.
"""

from __future__ import annotations

import select
from typing import Any

from gevent import monkey
from redis._parsers import hiredis as hiredis_parser

_INSTALLED_MARK = "_taskrelay_zero_wait"


def install() -> bool:
    """Answer zero-timeout readiness checks with the unpatched poll; True if installed."""
    gevent_check = getattr(hiredis_parser, "_socket_can_read", None)
    if gevent_check is None:
        return False
    if getattr(gevent_check, _INSTALLED_MARK, False):
        return True
    os_poll = monkey.get_original("select", "poll")

    def socket_can_read(sock: Any, timeout: float | None) -> bool:
        if timeout != 0 or (hasattr(sock, "pending") and sock.pending()):
            return bool(gevent_check(sock, timeout))
        poller = os_poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))

    setattr(socket_can_read, _INSTALLED_MARK, True)
    hiredis_parser._socket_can_read = socket_can_read
    return True
