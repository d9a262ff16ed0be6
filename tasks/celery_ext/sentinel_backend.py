# redis.sentinel is untyped: every call into it would need its own ignore.
# mypy: disable-error-code="no-untyped-call"
"""taskrelay's result backends (tasks/celery_ext/result_backend.py) through Redis Sentinel.

The backend's URL is taskrelay's Sentinel URL (tasks/redis_urls.py); its pool asks
the sentinels for the primary on every new connection, so a result written after
a failover goes to the new primary, with the backend's retries (result_write_retry_s)
covering the seconds in which no primary is known. Celery's own SentinelBackend takes
kombu's URL form and the primary's name from result_backend_transport_options: one
more setting to forget ("No master found for None"), which this form cannot miss.
"""

from __future__ import annotations

from typing import Any

from redis import sentinel as redis_sentinel

from tasks import redis_urls
from tasks.celery_ext.result_backend import GuardedRedisBackend, PublishOnlyRedisBackend
from tasks.connections import SENTINEL_SOCKET_TIMEOUT_S, FollowingSentinelPool

BACKEND_PATH = "tasks.celery_ext.sentinel_backend:GuardedSentinelBackend"
PUBLISH_ONLY_BACKEND_PATH = "tasks.celery_ext.sentinel_backend:PublishOnlySentinelBackend"


class SentinelPool:
    """Makes the backend's pool a Sentinel-managed one, from the Sentinel URL."""

    _sentinel_group: redis_urls.SentinelGroup

    def _params_from_url(self, url: str, defaults: dict[str, Any]) -> dict[str, Any]:
        group = redis_urls.parse_sentinel(url)
        self._sentinel_group = group
        params = {k: v for k, v in defaults.items() if k not in ("host", "port")}
        params.update(group.primary_kwargs())
        return params

    def _get_pool(self, **params: Any) -> Any:
        group = self._sentinel_group
        manager = redis_sentinel.Sentinel(
            list(group.sentinels),
            sentinel_kwargs=group.sentinel_kwargs(
                socket_timeout=SENTINEL_SOCKET_TIMEOUT_S,
                socket_connect_timeout=SENTINEL_SOCKET_TIMEOUT_S,
            ),
        )
        client_class: Any = self._get_client()  # type: ignore[attr-defined]
        return manager.master_for(
            group.master_name,
            redis_class=client_class,
            connection_pool_class=FollowingSentinelPool,
            **params,
        ).connection_pool


class GuardedSentinelBackend(SentinelPool, GuardedRedisBackend):
    pass


class PublishOnlySentinelBackend(SentinelPool, PublishOnlyRedisBackend):
    pass
