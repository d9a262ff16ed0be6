"""taskrelay's broker transport on a real kombu event loop and a real Redis: each socket
enters the poller once, not once per turn, and the socket that replaces a dropped one
is read again."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.asynchronous import Hub
from kombu.utils.compat import fileno

from tests.support import kombu_connection

TRANSPORT = "tasks.celery_ext.transport:Transport"
# A database of its own, emptied before and after.
BROKER_DB = 10
WAIT_S = 10.0
# Rounds of one task message and one broadcast each, in the steady phases.
ROUNDS = 40


def connected(url: str) -> Any:
    return kombu_connection(url, TRANSPORT)


class CountedRegistrations:
    """The loop's real poller, with its registrations counted by fd."""

    def __init__(self, poller: Any) -> None:
        self.by_fd: Counter[int] = Counter()
        self._register = poller.register
        poller.register = self._register_counted

    def _register_counted(self, fd: Any, events: int) -> Any:
        self.by_fd[fileno(fd)] += 1
        return self._register(fd, events)

    def of(self, fds: set[int]) -> dict[int, int]:
        return {fd: self.by_fd[fd] for fd in fds}


class Turns:
    """A hub's loop, turned one step at a time. A turn that raises a connection
    error ends the loop, as in Celery; the next one starts a new loop on the same
    hub and transport, whose poller reconnects."""

    def __init__(self, hub: Hub, connection: Connection) -> None:
        self.hub = hub
        self.connection_errors = connection.connection_errors
        self.loop = hub.create_loop()
        self.count = 0
        self.dropped = 0

    def until(self, done: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not done():
            assert time.monotonic() < deadline, f"the event loop never got to: {what}"
            self.count += 1
            try:
                next(self.loop)
            except self.connection_errors:
                self.dropped += 1
                self.loop = self.hub.create_loop()


def client_entry(broker_redis: redis.Redis, sock: Any) -> dict[str, Any] | None:
    """Redis's CLIENT LIST entry for one of this process's sockets."""
    if sock is None:
        return None
    host, port = sock.getsockname()[:2]
    return next((e for e in broker_redis.client_list() if e["addr"] == f"{host}:{port}"), None)


def subscribed(broker_redis: redis.Redis, channel: Any) -> bool:
    connection = channel.subclient.connection  # None until the first subscription
    entry = client_entry(broker_redis, connection and connection._sock)
    return entry is not None and int(entry["psub"]) > 0


def test_each_socket_enters_the_poller_once_and_a_replacement_is_read_again(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    work = Queue("t-loop-work", Exchange("t-loop-work", "direct"), routing_key="t-loop-work")
    broadcast = Queue("t-loop-broadcast", Exchange("t-loop-fanout", "fanout"))
    received: list[str] = []
    hub = Hub()
    registrations = CountedRegistrations(hub.poller)
    try:
        with connected(broker_url) as consumer_side, connected(broker_url) as producer_side:
            consumer_side.transport.register_with_event_loop(consumer_side.connection, hub)
            cycle = consumer_side.transport.cycle
            channel = consumer_side.default_channel
            producer = Producer(producer_side.default_channel, serializer="json")
            callbacks = [lambda body, message: (received.append(body["n"]), message.ack())]
            turns = Turns(hub, consumer_side)

            def one_round(number: int) -> None:
                """One task message and one broadcast, each taken through the loop."""
                producer.publish(
                    {"n": f"work-{number}"},
                    exchange=work.exchange,
                    routing_key=work.routing_key,
                    declare=[work],
                )
                producer.publish(
                    {"n": f"broadcast-{number}"},
                    exchange=broadcast.exchange,
                    declare=[broadcast.exchange],
                )
                wanted = {f"work-{number}", f"broadcast-{number}"}
                turns.until(lambda: wanted <= set(received), f"round {number}'s messages")

            with Consumer(channel, queues=[work, broadcast], callbacks=callbacks, accept=["json"]):
                turns.until(lambda: subscribed(broker_redis, channel), "the broadcast subscription")
                one_round(0)
                fds = set(cycle.fds)
                assert len(fds) == 2  # the fetch connection and the subscription
                settled = registrations.of(fds)
                turns_before = turns.count
                for number in range(1, ROUNDS):
                    one_round(number)
                assert turns.count - turns_before >= ROUNDS
                # A steady loop asks nothing of the poller; kombu's own tick registers
                # every socket again on every turn.
                assert registrations.of(fds) == settled
                assert max(settled.values()) <= 2

                # The server drops both connections: the next turns reconnect, often
                # to the same fd numbers, which the loop must read again.
                for sock in (channel.client.connection._sock, channel.subclient.connection._sock):
                    host, port = sock.getsockname()[:2]
                    broker_redis.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")
                turns.until(lambda: turns.dropped, "the dropped connection")
                turns.until(lambda: subscribed(broker_redis, channel), "the new subscription")
                one_round(ROUNDS)
                new_fds = set(cycle.fds)
                assert len(new_fds) == 2
                assert all(registrations.by_fd[fd] > settled.get(fd, 0) for fd in new_fds)

                resettled = registrations.of(new_fds)
                for number in range(ROUNDS + 1, 2 * ROUNDS):
                    one_round(number)
                assert registrations.of(new_fds) == resettled
    finally:
        hub.close()
    assert len(received) == 2 * 2 * ROUNDS


def test_a_subscriber_that_redis_py_reconnects_inside_a_read_is_still_heard(
    broker_url: str, broker_redis: redis.Redis
) -> None:
    """With the workers' setting (celeryconfig: retry_on_timeout), redis-py would
    reconnect the subscriber inside a read and block there on a socket the loop never
    registered; the loop must instead see the loss, reconnect, and hear again."""
    broadcast = Queue("t-loop-resubscribed", Exchange("t-loop-resubscribed", "fanout"))
    received: list[int] = []
    hub = Hub()
    try:
        with (
            kombu_connection(broker_url, TRANSPORT, retry_on_timeout=True) as consumer_side,
            connected(broker_url) as producer_side,
        ):
            consumer_side.transport.register_with_event_loop(consumer_side.connection, hub)
            channel = consumer_side.default_channel
            producer = Producer(producer_side.default_channel, serializer="json")
            turns = Turns(hub, consumer_side)

            def heard(number: int) -> None:
                def sent_and_heard() -> bool:
                    producer.publish(
                        {"n": number}, exchange=broadcast.exchange, declare=[broadcast.exchange]
                    )
                    return number in received

                turns.until(sent_and_heard, f"broadcast {number}")

            with Consumer(
                channel,
                queues=[broadcast],
                callbacks=[lambda body, message: received.append(body["n"])],
                accept=["json"],
            ):
                turns.until(lambda: subscribed(broker_redis, channel), "the subscription")
                heard(1)
                before = channel.subclient.connection._sock
                entry = client_entry(broker_redis, before)
                assert entry is not None
                broker_redis.execute_command("CLIENT", "KILL", "ID", entry["id"])
                heard(2)
                assert channel.subclient.connection._sock is not before
                assert turns.dropped >= 1  # the loop saw the loss
    finally:
        hub.close()


def test_a_transport_registered_again_leaves_one_tick_on_the_loop(broker_url: str) -> None:
    hub = Hub()
    try:
        with connected(broker_url) as connection:
            transport = connection.transport
            transport.register_with_event_loop(connection.connection, hub)
            first = set(hub.on_tick)
            # What a reconnect does: the same transport, registered on the same loop.
            transport.register_with_event_loop(connection.connection, hub)
            second = set(hub.on_tick)
    finally:
        hub.close()
    assert len(first) == len(second)
    assert first != second  # the new registration's tick replaced the old one
