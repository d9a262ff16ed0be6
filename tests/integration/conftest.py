"""Fixtures of the broker tests: a Redis database of the test module's own (its BROKER_DB)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support import emptied_database


@pytest.fixture
def broker_url(redis_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    with emptied_database(redis_url, request.module.BROKER_DB) as url:
        yield url


@pytest.fixture
def broker_redis(broker_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(broker_url, decode_responses=True)
    yield client
    client.close()
