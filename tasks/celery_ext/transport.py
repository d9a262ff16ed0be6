"""kombu's Redis transport, with one Redis client object per channel.

kombu builds a new ``redis.Redis`` object for every command it sends outside the
event loop: each publish, each unacked-record write, each acknowledgement.
redis-py's constructor is not cheap (it builds its table of reply callbacks), and
in a worker's main process it was about a tenth of the CPU spent per task. The
client objects share the channel's connection pool either way, and a
``redis.Redis`` is safe to share, so one per channel does the same work for less.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            # The event loop's own client (BRPOP, LISTEN) stays kombu's.
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        if self._shared_client is None:
            self._shared_client = super()._create_client()  # type: ignore[no-untyped-call]
        return self._shared_client

    def _disconnect_pools(self) -> None:
        # The shared client holds the pool being dropped; a new pool gets a new client.
        self._shared_client = None
        super()._disconnect_pools()  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    Channel = Channel
