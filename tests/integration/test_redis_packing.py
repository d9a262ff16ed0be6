"""Every Redis client taskrelay makes packs its commands with hiredis, and Redis reads them."""

from __future__ import annotations

import pytest
import redis
from celery import Celery

from tasks import connections
from tasks.app_factory import create_celery_app
from tasks.redis_packing import PACKER

BROKER_DB = 14


def _packer_of(client: redis.Redis) -> object:
    return client.connection_pool.connection_kwargs.get("command_packer")


def test_the_web_and_worker_clients_send_commands_redis_reads(broker_url: str) -> None:
    for client in (connections.make_web_client(broker_url), connections.make_client(broker_url)):
        try:
            assert _packer_of(client) is PACKER
            client.set("text", "héllo ☃")
            client.set("raw", b"\x00\xff\r\n")
            client.zadd("index", {"task": 1796565280.076822})
            assert client.incrby("counter", 10**18) == 10**18
            assert client.get("text") == "héllo ☃".encode()
            assert client.get("raw") == b"\x00\xff\r\n"
            assert client.zscore("index", "task") == 1796565280.076822
            assert client.client_setname("packed") is True  # a two-word command name
            with pytest.raises(redis.DataError):
                client.set("flag", True)  # type: ignore[arg-type]
        finally:
            client.flushdb()
            client.close()


def test_the_broker_channel_and_the_result_backend_pack_with_hiredis(broker_url: str) -> None:
    app: Celery = create_celery_app(
        broker_url, broker_url=broker_url, result_backend=broker_url, publish_only=True
    )
    try:
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            assert _packer_of(channel.client) is PACKER
            channel.client.lpush("packed-queue", "message")
            assert channel.client.rpop("packed-queue") == b"message"
        backend = app.backend
        assert _packer_of(backend.client) is PACKER
        backend.client.set("packed-meta", "{}")
        assert backend.client.get("packed-meta") == b"{}"
    finally:
        app.close()
