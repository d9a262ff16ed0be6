"""The Redis broker transport: kombu's, with one client object per channel."""

from __future__ import annotations

from kombu import Connection

from tasks.app_factory import create_celery_app


def test_redis_urls_use_the_shared_client_transport_and_messages_go_through(
    redis_url: str,
) -> None:
    app = create_celery_app(redis_url)
    assert app.conf.broker_transport == "tasks.celery_ext.transport:Transport"
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert type(channel).__module__ == "tasks.celery_ext.transport"
        assert channel._create_client() is channel._create_client()
        queue = connection.SimpleQueue("taskrelay-test-transport")
        try:
            for number in range(3):
                queue.put({"number": number})
            received = []
            for _ in range(3):
                message = queue.get(timeout=5)
                received.append(message.payload["number"])
                message.ack()
            assert received == [0, 1, 2]
        finally:
            queue.clear()
            queue.close()


def test_other_brokers_keep_the_transport_of_their_scheme() -> None:
    app = create_celery_app(broker_url="amqp://guest:guest@127.0.0.1:5672//")
    assert app.conf.broker_transport is None
    assert Connection(app.conf.broker_url).transport_cls == "amqp"
