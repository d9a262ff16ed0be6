"""taskrelay's Redis broker transport, against a real Redis: the atomic fetch, the wake
key, batched acknowledgements, kombu's order and records, and the lease accessor."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.asynchronous import Hub
from kombu.transport.redis import Mutex

from tasks.app_factory import create_celery_app
from tasks.celery_ext import fetch
from tasks.celery_ext.kombu_internals import KombuInternalsChanged, held_delivery_tags
from tasks.celery_ext.leases import renew
from tasks.celery_ext.transport import MAX_WAIT_S, UNACKED_MUTEX_EXPIRE_S
from tests.support import kombu_connection, running_redis, wait_until

TRANSPORT = "tasks.celery_ext.transport:Transport"
# A database of its own: these tests read and restore the whole unacked hash.
BROKER_DB = 9
SEP = "\x06\x16"
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"
WAIT_S = 10.0


def connected(url: str, transport: str = TRANSPORT, **options: Any) -> Any:
    return kombu_connection(url, transport, **options)


def a_queue(name: str, **options: Any) -> Queue:
    return Queue(name, Exchange(name, "direct"), routing_key=name, **options)


def publish(connection: Connection, queue: Queue, body: Any, priority: int | None = None) -> None:
    producer = Producer(connection.default_channel)
    producer.publish(
        body,
        exchange=queue.exchange,
        routing_key=queue.routing_key,
        declare=[queue],
        priority=priority,
        serializer="json",
    )


def drain(connection: Connection, received: list[Any], count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while len(received) < count:
        assert time.monotonic() < deadline, f"got {len(received)} of {count} messages"
        with suppress(TimeoutError):
            connection.drain_events(timeout=1)


def turn_until(loop: Iterator[Any], done: Callable[[], object]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        assert time.monotonic() < deadline, "the event loop never got there"
        next(loop)


def test_redis_urls_use_the_taskrelay_transport_and_messages_go_through(broker_url: str) -> None:
    app = create_celery_app(broker_url)
    assert app.conf.broker_transport == TRANSPORT
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


def test_a_fetched_message_is_on_record_as_kombu_records_it_and_its_ack_removes_the_record(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    queue = a_queue("t-record")
    with connected(broker_url) as connection:
        publish(connection, queue, {"args": [], "kwargs": {}})
        raw = json.loads(broker_redis.lindex("t-record", 0) or "null")
        message = queue(connection.default_channel).get()
        assert message is not None
        tag = message.delivery_tag
        assert broker_redis.llen("t-record") == 0
        # kombu's QoS.append writes [message, exchange, routing key], scored by delivery time.
        record = broker_redis.hget(UNACKED, tag)
        assert record is not None
        assert json.loads(record) == [raw, "t-record", "t-record"]
        assert abs((broker_redis.zscore(UNACKED_INDEX, tag) or 0) - time.time()) < 60
        assert message.payload == {"args": [], "kwargs": {}}
        message.ack()
        assert broker_redis.hget(UNACKED, tag) is None
        assert broker_redis.zscore(UNACKED_INDEX, tag) is None


def test_a_consumer_that_dies_after_the_fetch_leaves_its_messages_to_kombus_restore(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    queue = a_queue("t-restore")
    with connected(broker_url) as connection:
        publish(connection, queue, {"n": 1})
        # The script ran and the reply was never read: what a SIGKILL leaves behind.
        connection.default_channel._get("t-restore")
    assert broker_redis.llen("t-restore") == 0
    assert broker_redis.hlen(UNACKED) == 1
    with connected(broker_url, visibility_timeout=0) as connection:
        connection.default_channel.qos.restore_visible(num=10, interval=1)
    assert broker_redis.hlen(UNACKED) == 0
    restored = json.loads(broker_redis.lindex("t-restore", 0) or "null")
    assert restored["headers"]["redelivered"] is True
    # A message handed back wakes consumers, as a publish does.
    assert broker_redis.zscore(f"t-restore{SEP}{fetch.WAKE_SUFFIX}", fetch.WAKE_MEMBER) is not None


@pytest.mark.parametrize("transport", ["redis", TRANSPORT])
def test_messages_come_in_the_order_kombus_own_transport_gives_them(
    broker_url: str, transport: str
) -> None:
    queues = [a_queue("t-order-a"), a_queue("t-order-b")]
    sent = [(0, 0), (0, 9), (1, 6), (0, 3), (1, 0), (0, 0), (1, 6), (0, 9), (1, 3), (1, 0)]
    with connected(broker_url) as connection:
        for number, (which, priority) in enumerate(sent):
            publish(connection, queues[which], {"n": number}, priority=priority)
    received: list[int] = []
    with connected(broker_url, transport=transport) as connection:
        consumer = Consumer(
            connection.default_channel,
            queues=queues,
            callbacks=[lambda body, message: (received.append(body["n"]), message.ack())],
            accept=["json"],
        )
        with consumer:
            drain(connection, received, len(sent))
    # kombu's stock transport, BRPOP by BRPOP: steps first, queues in round robin.
    assert received == [0, 4, 5, 9, 3, 8, 2, 6, 1, 7]


def test_one_fetch_takes_the_free_prefetch_window_at_once(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    queue = a_queue("t-window")
    received: list[Any] = []
    with connected(broker_url) as connection:
        for number in range(5):
            publish(connection, queue, {"n": number})
        channel = connection.default_channel
        channel.basic_qos(prefetch_count=3)
        with Consumer(channel, queues=[queue], callbacks=[lambda b, m: received.append(m)]):
            connection.drain_events(timeout=WAIT_S)
            # One reply brought three messages, all on record before any was seen.
            assert len(received) == 3
            assert broker_redis.llen("t-window") == 2
            assert broker_redis.hlen(UNACKED) == 3
            for message in received:
                message.ack()


def blocked_on_wake_keys(client: redis.Redis) -> bool:
    return any(
        entry["cmd"] == "bzpopmin" and "b" in entry["flags"] for entry in client.client_list()
    )


def test_a_publish_sets_its_queues_wake_key_and_wakes_a_consumer_blocked_on_it(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    queue = a_queue("t-wake")
    wake = f"t-wake{SEP}{fetch.WAKE_SUFFIX}"
    received: list[Any] = []
    with connected(broker_url) as consumer_side, connected(broker_url) as producer_side:
        publish(producer_side, queue, {"n": 0})
        assert broker_redis.zscore(wake, fetch.WAKE_MEMBER) is not None
        channel = consumer_side.default_channel
        with Consumer(channel, queues=[queue], callbacks=[lambda b, m: received.append(m)]):
            drain(consumer_side, received, 1)
            assert broker_redis.exists(wake) == 0  # the fetch emptied the queue
            with pytest.raises(TimeoutError):
                consumer_side.drain_events(timeout=0.3)  # nothing left: it waits
            assert blocked_on_wake_keys(broker_redis)
            publish(producer_side, queue, {"n": 1})
            # The blocked wait took the wake key at once; nothing had fetched since.
            assert broker_redis.exists(wake) == 0
            drain(consumer_side, received, 2)
            for message in received:
                message.ack()


def test_a_message_from_kombus_own_producer_is_taken_within_the_wait_bound(
    broker_url: str,
) -> None:
    queue = a_queue("t-no-wake")
    received: list[Any] = []
    with connected(broker_url) as consumer_side, connected(broker_url, "redis") as stock:
        channel = consumer_side.default_channel
        with Consumer(channel, queues=[queue], callbacks=[lambda b, m: received.append(m)]):
            with pytest.raises(TimeoutError):
                consumer_side.drain_events(timeout=0.3)
            publish(stock, queue, {"n": 1})  # no wake key: a lost wake-up
            started = time.monotonic()
            drain(consumer_side, received, 1)
            waited_s = time.monotonic() - started
            received[0].ack()
    assert waited_s < MAX_WAIT_S + 2  # one bounded wait, plus a loaded machine's slack


def test_a_consumer_loads_the_fetch_script_again_after_redis_forgot_it(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    queue = a_queue("t-noscript")
    received: list[Any] = []
    with connected(broker_url) as connection:
        channel = connection.default_channel
        with Consumer(channel, queues=[queue], callbacks=[lambda b, m: received.append(m)]):
            publish(connection, queue, {"n": 0})
            drain(connection, received, 1)
            broker_redis.script_flush()  # what a Redis restart does to the script cache
            publish(connection, queue, {"n": 1})
            drain(connection, received, 2)
            for message in received:
                message.ack()
    assert [message.payload["n"] for message in received] == [0, 1]


def test_a_full_redis_still_hands_out_and_acknowledges_messages(tmp_path: Path) -> None:
    with running_redis(tmp_path / "full-redis") as server:
        client = redis.Redis.from_url(server.url)
        try:
            queue = a_queue("t-full")
            with connected(server.url) as connection:
                publish(connection, queue, {"pad": "x" * 1000})
                client.config_set("maxmemory", client.info("memory")["used_memory"] - 1000)
                with pytest.raises(redis.OutOfMemoryError):
                    client.set("probe", "x")  # full: nothing new may be written
                # Draining frees memory, so it goes on: the fetch, then the ack.
                message = queue(connection.default_channel).get()
                assert message is not None
                assert client.hlen(UNACKED) == 1
                message.ack()
                assert client.hlen(UNACKED) == 0
        finally:
            client.config_set("maxmemory", 0)
            client.close()


def test_the_restore_lock_of_a_worker_killed_mid_sweep_expires_in_seconds(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    with connected(broker_url) as connection:
        qos = connection.default_channel.qos
        client = connection.default_channel._create_client()
        sweep = Mutex(client, qos.unacked_mutex_key, qos.unacked_mutex_expire)
        sweep.__enter__()  # taken, and never given back: the sweeper was SIGKILLed
        assert 0 < broker_redis.pttl(qos.unacked_mutex_key) <= UNACKED_MUTEX_EXPIRE_S * 1000


def test_an_expiring_queue_gives_its_wake_key_the_same_lifetime(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    queue = a_queue("t-expiring", expires=10)
    with connected(broker_url) as connection:
        publish(connection, queue, {"n": 1})
    assert 0 < broker_redis.pttl(f"t-expiring{SEP}{fetch.WAKE_SUFFIX}") <= 10_000


@contextmanager
def consuming_on_a_loop(
    broker_url: str, queue: Queue, received: list[Any], prefetch: int | None = None
) -> Iterator[tuple[Any, Iterator[Any]]]:
    """A consumer of ``queue`` on a real event loop: (its channel, the loop's turns)."""
    hub = Hub()
    try:
        with connected(broker_url) as connection:
            connection.transport.register_with_event_loop(connection.connection, hub)
            channel = connection.default_channel
            if prefetch is not None:
                channel.basic_qos(0, prefetch, False)
            with Consumer(channel, queues=[queue], callbacks=[lambda b, m: received.append(m)]):
                yield channel, hub.create_loop()
    finally:
        hub.close()


def acked_while_waiting(channel: Any, loop: Iterator[Any], received: list[Any]) -> str:
    """Takes the one message there is, lets the consumer wait for a wake-up (its queue
    is empty now), then acks the message; returns its delivery tag."""
    turn_until(loop, lambda: received)
    turn_until(loop, channel.waiting_for_wake_up)
    received[0].ack()
    tag: str = received[0].delivery_tag
    return tag


def test_an_ack_on_an_event_loop_goes_out_with_the_loops_next_turn(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    queue = a_queue("t-loop")
    received: list[Any] = []
    with connected(broker_url) as producer_side:
        publish(producer_side, queue, {"n": 1})
        publish(producer_side, queue, {"n": 2})
    # A window of one: holding a message, the consumer has nothing in flight.
    with consuming_on_a_loop(broker_url, queue, received, prefetch=1) as (channel, loop):
        turn_until(loop, lambda: received)
        assert not channel.waiting_for_wake_up()
        tag = received[0].delivery_tag
        received[0].ack()
        assert broker_redis.hget(UNACKED, tag) is not None  # collected, not sent yet
        next(loop)
        wait_until(lambda: broker_redis.hget(UNACKED, tag) is None, timeout_s=WAIT_S)
        assert broker_redis.zscore(UNACKED_INDEX, tag) is None
        turn_until(loop, lambda: len(received) == 2)
        received[1].ack()


def test_an_ack_made_while_waiting_for_a_wake_up_rides_the_fetch_that_ends_the_wait(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    queue = a_queue("t-loop-wait")
    received: list[Any] = []
    with connected(broker_url) as producer_side:
        publish(producer_side, queue, {"n": 1})
        with consuming_on_a_loop(broker_url, queue, received) as (channel, loop):
            tag = acked_while_waiting(channel, loop, received)
            # What the loop's next turn starts with; the wait's reply is still unread.
            channel.connection.cycle.on_poll_start()
            # Held while the wait lasts: no round trip of its own.
            assert broker_redis.hget(UNACKED, tag) is not None
            publish(producer_side, queue, {"n": 2})
            turn_until(loop, lambda: len(received) == 2)
            # The wake-up's fetch took the next message and carried the ack.
            assert broker_redis.hget(UNACKED, tag) is None
            assert broker_redis.zscore(UNACKED_INDEX, tag) is None
            received[1].ack()


def test_an_ack_held_through_a_wait_that_nobody_ends_goes_out_within_the_wait_bound(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    queue = a_queue("t-loop-idle")
    received: list[Any] = []
    with connected(broker_url) as producer_side:
        publish(producer_side, queue, {"n": 1})
    with consuming_on_a_loop(broker_url, queue, received) as (channel, loop):
        tag = acked_while_waiting(channel, loop, received)
        acked_at = time.monotonic()
        turn_until(loop, lambda: broker_redis.hget(UNACKED, tag) is None)
        held_s = time.monotonic() - acked_at
    assert broker_redis.zscore(UNACKED_INDEX, tag) is None
    assert held_s < MAX_WAIT_S + 2  # one bounded wait, plus a loaded machine's slack


def test_a_consumer_without_acks_leaves_no_in_flight_records(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    queue = a_queue("t-no-ack")
    received: list[Any] = []
    with connected(broker_url) as connection:
        publish(connection, queue, {"n": 1})
        channel = connection.default_channel
        callbacks = [lambda b, m: received.append(m)]
        with Consumer(channel, queues=[queue], callbacks=callbacks, no_ack=True):
            drain(connection, received, 1)
    assert broker_redis.hlen(UNACKED) == 0
    assert broker_redis.zcard(UNACKED_INDEX) == 0


def test_the_lease_renewal_re_scores_held_messages_and_never_revives_acked_ones(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    queue = a_queue("t-lease")
    with connected(broker_url) as connection:
        publish(connection, queue, {"n": 1})
        publish(connection, queue, {"n": 2})
        channel = connection.default_channel
        held, done = queue(channel).get(), queue(channel).get()
        assert held is not None and done is not None
        done.ack()
        qos = channel.qos
        broker_redis.zadd(UNACKED_INDEX, {held.delivery_tag: 1.0})
        now = time.time()
        renew(broker_redis, qos.unacked_index_key, held_delivery_tags(qos), now)
        assert broker_redis.zscore(UNACKED_INDEX, held.delivery_tag) == pytest.approx(now)
        assert broker_redis.zscore(UNACKED_INDEX, done.delivery_tag) is None
        held.ack()


def test_the_held_tags_accessor_fails_loudly_naming_kombus_attribute_when_it_is_gone(
    broker_url: str,
) -> None:
    with connected(broker_url) as connection:
        qos = connection.default_channel.qos
        assert held_delivery_tags(qos) == []
        delivered = qos._delivered
        del qos._delivered  # what a kombu that renamed it looks like
        try:
            with pytest.raises(KombuInternalsChanged, match="_delivered"):
                held_delivery_tags(qos)
        finally:
            qos._delivered = delivered
