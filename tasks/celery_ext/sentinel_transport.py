# kombu is untyped: every call into it would need its own ignore.
# mypy: disable-error-code="no-untyped-call"
"""taskrelay's broker transport (tasks/celery_ext/transport.py) through Redis Sentinel.

The channel is taskrelay's (the atomic fetch script, batched acks, the wake keys)
on kombu's SentinelChannel, whose connection pools ask the sentinels for the
primary on every new connection. After a failover the event loop's connection
fails, Celery reconnects, and the fetch script runs on the new primary (loaded
again there if it was never loaded: the NoScriptError path of the fetch).

The broker URL is taskrelay's Sentinel URL (tasks/redis_urls.py), which names
the sentinels, the primary's name, its database and passwords in one string; the
transport keeps it whole instead of letting kombu parse one host out of it.
kombu's own form (``sentinel://host:port;sentinel://host:port`` with
``master_name`` in the transport options) still works as kombu documents it.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from redis import sentinel as redis_sentinel
from redis.exceptions import ConnectionError as RedisConnectionError

from tasks import redis_packing, redis_urls
from tasks.celery_ext import transport
from tasks.connections import (
    PRIMARY_RECHECK_S,
    SENTINEL_SOCKET_TIMEOUT_S,
    FollowingSentinelPool,
    serves_a_replaced_primary,
)


class SentinelChannel(transport.Channel, kombu_redis.SentinelChannel):
    _group: redis_urls.SentinelGroup | None = None

    @property
    def group(self) -> redis_urls.SentinelGroup | None:
        """The Sentinel group of a taskrelay Sentinel URL; None for kombu's own form."""
        if self._group is None:
            client = self.connection.client if self.connection is not None else None
            url = getattr(client, "hostname", None) or ""
            if redis_urls.is_sentinel(url):
                self._group = redis_urls.parse_sentinel(url)
        return self._group

    _primary_checked_at = 0.0

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self._on_demoted_primary():
            # As when the server closes the connection: Celery reconnects, now to the
            # new primary, and hands back what the worker held.
            self.client.connection.disconnect()
            raise RedisConnectionError("Sentinel promoted another primary")
        super()._brpop_start(timeout)

    def _on_demoted_primary(self) -> bool:
        """Whether the event loop's connection is to a primary Sentinel has replaced.

        Sentinel demotes a reachable old primary only some seconds after the
        promotion (tasks/connections.py, PRIMARY_RECHECK_S); a consumer that kept
        fetching there would not see what is sent to the new primary meanwhile.
        """
        now = monotonic()
        if now - self._primary_checked_at < PRIMARY_RECHECK_S:
            return False
        self._primary_checked_at = now
        client = self.client
        return serves_a_replaced_primary(client.connection_pool, client.connection)

    def _connparams(self, asynchronous: bool = False) -> Any:
        group = self.group
        if group is None:
            return super()._connparams(asynchronous)
        # kombu would read one host out of the URL, which here names several
        # sentinels: the same parameters, from the parsed URL instead.
        host, port = group.sentinels[0]
        connection_class: Any = self.connection_class_ssl if group.tls else self.connection_class
        if asynchronous:
            connection_class = _removed_from_poller_on_disconnect(self, connection_class)
        params = {
            "host": host,
            "port": port,
            "db": group.db,
            "username": group.username,
            "password": group.password,
            "max_connections": self.max_connections,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
            "socket_keepalive": self.socket_keepalive,
            "socket_keepalive_options": self.socket_keepalive_options,
            "health_check_interval": self.health_check_interval,
            "retry_on_timeout": self.retry_on_timeout,
            "client_name": self.client_name,
            "connection_class": connection_class,
        }
        redis_packing.add_packer(params)
        return params

    def _sentinel_managed_pool(self, asynchronous: bool = False) -> Any:
        group = self.group
        if group is None:
            return super()._sentinel_managed_pool(asynchronous)
        params = self._connparams(asynchronous)
        for name in ("host", "port", "username", "password"):
            params.pop(name, None)
        manager = redis_sentinel.Sentinel(
            list(group.sentinels),
            min_other_sentinels=getattr(self, "min_other_sentinels", 0) or 0,
            sentinel_kwargs=group.sentinel_kwargs(
                socket_timeout=SENTINEL_SOCKET_TIMEOUT_S,
                socket_connect_timeout=SENTINEL_SOCKET_TIMEOUT_S,
            ),
            **params,
        )
        # Kept so that kombu closes the connections to the sentinels with the pools.
        if asynchronous:
            self._async_sentinel_manager = manager
        else:
            self._sentinel_manager = manager
        credentials = {
            key: value
            for key, value in (("username", group.username), ("password", group.password))
            if value
        }
        return manager.master_for(
            group.master_name,
            redis.Redis,
            connection_pool_class=FollowingSentinelPool,
            **credentials,
        ).connection_pool


def _removed_from_poller_on_disconnect(channel: SentinelChannel, base: Any) -> Any:
    """The event loop's connection class, as kombu's ``_connparams`` makes it: a
    connection that drops leaves the poller, and the next turn reconnects."""

    class Connection(base):  # type: ignore[misc]
        def disconnect(self, *args: Any, **kwargs: Any) -> None:
            super().disconnect(*args, **kwargs)
            if channel._registered:
                channel._on_connection_disconnect(self)

    return Connection


class Transport(transport.Transport):
    Channel = SentinelChannel
    default_port: Any = kombu_redis.SentinelTransport.default_port
    # The broker URL names several sentinels: kombu must keep it whole.
    can_parse_url = True
