"""taskrelay's Sentinel URL: what it names, and the settings that build it."""

from __future__ import annotations

import pytest
from kombu.utils.url import maybe_sanitize_url

import celeryconfig
from tasks import redis_urls
from webapp import limits


def test_a_sentinel_url_names_its_sentinels_primary_database_and_passwords() -> None:
    url = "rediss-sentinel://:p%40ss@10.0.0.1:26379/main/3?sentinel=10.0.0.2&sentinel_password=s3"
    group = redis_urls.parse_sentinel(url)
    assert group.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    assert (group.master_name, group.db, group.password) == ("main", 3, "p@ss")
    assert group.primary_kwargs() == {"db": 3, "password": "p@ss", "ssl": True}
    # The primary's password never goes to a sentinel.
    assert group.sentinel_kwargs() == {"password": "s3", "ssl": True}
    assert redis_urls.is_sentinel(url) and redis_urls.is_direct_redis(url)
    assert redis_urls.is_redis_broker(url)


@pytest.mark.parametrize(
    "url",
    ["redis-sentinel:///main", "redis-sentinel://127.0.0.1:26379", "redis://127.0.0.1:6379/0"],
)
def test_a_url_without_sentinels_or_a_primary_name_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="Sentinel URL"):
        redis_urls.parse_sentinel(url)


def test_the_environment_builds_the_url_every_client_reads() -> None:
    environ = {
        "REDIS_URL": "redis://ignored:6379/0",
        "REDIS_SENTINELS": "a:26379, b:26380",
        "REDIS_MASTER_NAME": "main",
        "REDIS_PASSWORD": "pw",
        "REDIS_SENTINEL_PASSWORD": "spw",
    }
    url = redis_urls.from_environment(environ, "redis://default:6399/0")
    assert url == "redis-sentinel://:pw@a:26379/main/0?sentinel=b:26380&sentinel_password=spw"
    group = redis_urls.parse_sentinel(url)
    assert group.sentinels == (("a", 26379), ("b", 26380))
    assert (group.password, group.sentinel_password) == ("pw", "spw")
    with pytest.raises(ValueError, match="REDIS_MASTER_NAME"):
        redis_urls.from_environment({"REDIS_SENTINELS": "a:26379"}, "redis://d:1/0")
    assert redis_urls.from_environment({}, "redis://d:1/0") == "redis://d:1/0"


def test_kombu_reads_the_url_as_one_address_to_log_it() -> None:
    url = redis_urls.sentinel_url("a:26379,b:26380,c:26381", "main", password="pw")
    assert maybe_sanitize_url(url).startswith("redis-sentinel://:**@a:26379/main/0")


def test_the_broker_and_the_rate_limiter_get_their_sentinel_forms() -> None:
    url = "redis-sentinel://:pw@a:26379/main/0?sentinel=b:26380"
    settings = celeryconfig.broker_dependent_settings(url)
    assert settings["broker_transport"] == "tasks.celery_ext.sentinel_transport:Transport"
    storage = limits.storage(url)
    assert storage["storage_uri"] == "redis+sentinel://a:26379,b:26380/main"
    assert storage["storage_options"]["password"] == "pw"
    assert storage["storage_options"]["sentinel_kwargs"] == {"password": None}
