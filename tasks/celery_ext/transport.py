# kombu is untyped: every call into it would need its own ignore.
# mypy: disable-error-code="no-untyped-call"
"""kombu's Redis transport with no window to lose a message, and fewer round trips.

kombu's transport takes a message with ``BRPOP`` and only then writes its in-flight
records (``unacked`` and ``unacked_index``): a worker SIGKILLed between the two loses
the message (celery/celery#7950). Here a message moves from its queue into those
records in one Lua script (fetch.lua, called through tasks/celery_ext/fetch.py), which
takes up to the channel's free prefetch window at once and also carries the
acknowledgements collected since the last fetch (tasks/celery_ext/acks.py). The
records are kombu's own, so kombu's ``restore_visible`` and taskrelay's lease renewal
work on them unchanged.

A script cannot block, so a consumer whose queues are empty waits on a wake key per
queue, BullMQ's marker: producers set it in the same round trip as the message
(``LPUSH`` + ``ZADD`` in one pipeline), the fetch sets it again while messages remain
so that the next blocked consumer takes them, and consumers ``BZPOPMIN`` it with a
bound of ``brpop_timeout`` (1 s). A wake-up that is lost (a producer on kombu's own
transport, a consumer killed after taking the wake key) costs at most that bound: a
consumer fetches after every wait, woken or not. Sidekiq's super_fetch (``LMOVE`` into
a list per process) was the other choice; it needs its own recovery of dead
processes' lists, while this keeps kombu's records, its visibility timeout and its
restore for everything, and keeps priorities (one script can look at every priority
list in kombu's order, where ``LMOVE`` takes from one list).

The wire protocol of the event loop stays kombu's: one command in flight per channel
on its own connection, sent when the prefetch window has room and read when the
socket is readable. That command is the fetch script while messages are expected (at
start, after a wait, after a fetch that left messages behind) and the bounded wait
otherwise. A fetch's reply holds messages already recorded, so it is always read,
even when the window has since closed; kombu parks a ``BRPOP`` reply in that case.
kombu's tick adds a reader for every socket on every turn of the loop, a failing
``epoll_ctl`` each; this transport's tick adds only a socket the loop does not read yet.

When the broker connection is lost, Celery closes it, and kombu hands the messages
the worker holds (prefetched, waiting for a countdown, running with late acks) back
as the channel closes. A restore that reaches Redis puts each one back on its queue
(one ``WATCH`` transaction per message that also deletes its records, so it cannot
come back twice). One that cannot reach Redis, the usual case when the connection
was lost, leaves the records where the fetch wrote them: they survive a Redis
restart (append-only file), no lease renews them any more, and any worker's
``restore_visible`` puts each back once after the visibility timeout. Forcing the
restore instead is not possible without Redis, and dumping the messages to a local
file would deliver them a second time next to their records. By the time kombu
closes the channel, Celery has detached its transport from the broker address; a
client asked for then raises a connection error, which kombu and Celery handle as
Redis being away, instead of the ``AttributeError`` in kombu's ``_connparams`` that
killed the worker.

Every client object outside the event loop is one per channel: kombu builds a new
``redis.Redis`` for each command, and its constructor cost about a tenth of a worker
main process's CPU per task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from queue import Empty
from time import monotonic, time
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.retry import Retry

from tasks import redis_packing
from tasks.celery_ext import atomic_publish, envelope_json, fetch, start_check
from tasks.celery_ext.acks import BatchedAckQoS

logger = logging.getLogger(__name__)

# The bound on one blocking wait, in seconds: the most a lost wake-up can cost.
MAX_WAIT_S = 1.0
# What a channel sent on its event-loop connection, when it is not a fetch.
_WAIT = "wait"
# How long kombu's restore sweep may hold its lock, in seconds. A sweep takes
# milliseconds; kombu's default (300) lets a worker killed mid-sweep keep every
# other worker from restoring anything for five minutes, far past the visibility
# timeout. Two sweeps that overlap are harmless: each restore is a WATCH transaction.
UNACKED_MUTEX_EXPIRE_S = 10


class Poller(kombu_redis.MultiChannelPoller):
    """kombu's poller, which also sends each turn's acknowledgements."""

    def on_poll_start(self) -> None:
        # Channels that send a fetch in this turn put their acks in it, and so does a
        # channel waiting for a wake-up, in the fetch that ends its wait (within
        # MAX_WAIT_S); the rest send theirs in a pipeline of their own.
        super().on_poll_start()
        for channel in list(self._channels):
            if not channel.waiting_for_wake_up():
                channel.flush_acks()

    def on_readable(self, fileno: int) -> Any:
        found = self._fd_to_chan.get(fileno)
        if found is not None and fileno not in self._paused_brpop:
            channel, kind = found
            if kind == "BRPOP" and channel.fetch_in_flight():
                return channel.handlers[kind]()
        return super().on_readable(fileno)

    def _register_LISTEN(self, channel: Any) -> None:  # noqa: N802 (kombu's name)
        # With retries (the workers' retry_on_timeout), redis-py reconnects a lost
        # subscriber inside the read and reads again, blocking with no timeout on a
        # socket that kombu never registered: a relay worker hung so after a
        # failover. Without them the read raises, and kombu and Celery reconnect the
        # subscriber as they reconnect any lost connection.
        super()._register_LISTEN(channel)
        connection = channel.subclient.connection
        if connection is not None and connection.retry.get_retries():
            connection.retry = Retry(NoBackoff(), 0)

    def _pause_brpop(self, channel: Any, fileno: int) -> None:
        if not channel.fetch_in_flight():
            super()._pause_brpop(channel, fileno)


class Channel(kombu_redis.Channel):
    QoS = BatchedAckQoS
    # kombu's Producer.batch() makes its batches with this: one MULTI/EXEC that the
    # web also queues a task's record on (tasks/celery_ext/atomic_publish.py).
    publish_batch_class = atomic_publish.TransactionalPublishBatch

    unacked_mutex_expire = UNACKED_MUTEX_EXPIRE_S

    _shared_client: Any = None
    _script: Any = None
    # The fetch (a fetch.FetchCall) or the wait in flight on the event-loop connection.
    _in_flight: Any = None
    # Whether the next command should be a fetch rather than a wait.
    _expect_messages = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._no_ack_queues: set[str] = set()
        super().__init__(*args, **kwargs)
        if self.global_keyprefix:
            raise ValueError("taskrelay's Redis transport does not support global_keyprefix")

    # -- clients --------------------------------------------------------------

    def _create_client(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            # kombu detached this channel's transport from its broker connection
            # (Celery closing a lost connection), so no address is left to connect
            # to. A connection error here is what every caller already handles as
            # Redis being unreachable; kombu's own transport fails with an
            # AttributeError that kills the worker.
            raise RedisConnectionError("the channel's broker connection is closed")
        if asynchronous:
            # The event loop's own client (fetch, wait, LISTEN) stays kombu's.
            return super()._create_client(asynchronous=True)
        if self._shared_client is None:
            self._shared_client = super()._create_client()
        return self._shared_client

    def _connparams(self, asynchronous: bool = False) -> Any:
        params = super()._connparams(asynchronous)
        redis_packing.add_packer(params)
        return params

    def _disconnect_pools(self) -> None:
        # The shared client holds the pool being dropped; a new pool gets a new client.
        self._shared_client = None
        super()._disconnect_pools()

    @property
    def _fetch_script(self) -> Any:
        # Always called with an explicit client; the one it is registered with only
        # computes the script's digest.
        if self._script is None:
            self._script = self._create_client().register_script(fetch.script_source())
        return self._script

    # -- acknowledgements -----------------------------------------------------

    def acks_batched(self) -> bool:
        """Whether an event loop will send this channel's acks within its turn."""
        transport = self.connection
        return bool(transport is not None and transport.acks_batched and not self.closed)

    def flush_acks(self) -> None:
        # kombu makes a channel's QoS on first use; one that never consumed has no acks.
        if self._qos is not None:
            self._qos.flush_acks()

    def close(self) -> None:
        if not self.closed:
            try:
                self.flush_acks()
            except self.connection_errors:
                logger.warning(
                    "could not send acknowledgements before closing; those messages "
                    "will be delivered again",
                    exc_info=True,
                )
        super().close()

    # -- consuming --------------------------------------------------------------

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        # Fetched messages always get records; a consumer without acks drops them
        # right after delivery.
        if no_ack:
            self._no_ack_queues.add(queue)
        else:
            self._no_ack_queues.discard(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _basic_cancel(self, consumer_tag: str) -> Any:
        queue = self._tag_to_queue.get(consumer_tag)
        result = super()._basic_cancel(consumer_tag)
        if queue is not None and queue not in self._active_queues:
            self._no_ack_queues.discard(queue)
        return result

    def fetch_in_flight(self) -> bool:
        return bool(self._in_poll) and isinstance(self._in_flight, fetch.FetchCall)

    def waiting_for_wake_up(self) -> bool:
        """Whether the event-loop connection is in a bounded wait, which a fetch follows."""
        return bool(self._in_poll) and self._in_flight is _WAIT

    def _fetch_call(
        self,
        queues: list[str],
        acks: list[str],
        limit: int | None = None,
        *,
        start_checks: bool = True,
    ) -> fetch.FetchCall:
        """A fetch of up to ``limit`` messages, by default the free prefetch window."""
        if limit is None:
            free = self.qos.can_consume_max_estimate()
            limit = fetch.MAX_FETCH_BATCH if free is None else min(free, fetch.MAX_FETCH_BATCH)
        return fetch.fetch_call(
            unacked_key=self.unacked_key,
            unacked_index_key=self.unacked_index_key,
            queues=queues,
            lists_by_step=[
                [self._q_for_pri(queue, step) for queue in queues] for step in self.priority_steps
            ],
            wake_keys=[fetch.wake_key(queue, self.sep) for queue in queues],
            now=time(),
            limit=limit,
            acks=acks,
            start_checks=start_checks,
        )

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self._in_flight is not None:
            # The connection was reset under the last command: its reply is gone.
            self._fetch_failed()
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        connection = self.client.connection
        if self._expect_messages:
            call = self._fetch_call(queues, self.qos.take_unsent_acks())
            command: list[Any] = [
                "EVALSHA",
                self._fetch_script.sha,
                len(call.keys),
                *call.keys,
                *call.args,
            ]
            self._in_flight = call
        else:
            bound = min(timeout or self.brpop_timeout or MAX_WAIT_S, MAX_WAIT_S)
            command = ["BZPOPMIN", *(fetch.wake_key(q, self.sep) for q in queues), bound]
            self._in_flight = _WAIT
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        try:
            connection.send_command(*command)
        except BaseException:
            self._fetch_failed()
            raise
        self._in_poll = connection

    def _brpop_read(self, **options: Any) -> bool:
        in_flight = self._in_flight
        try:
            command = "BZPOPMIN" if in_flight == _WAIT else "EVALSHA"
            try:
                reply = self.client.parse_response(self.client.connection, command, **options)
            except NoScriptError:
                # Redis restarted and forgot the script: nothing ran; load it, go again.
                self._fetch_failed()
                self._create_client().script_load(fetch.script_source())
                raise Empty() from None
            except self.connection_errors:
                self._fetch_failed()
                # Disconnect so the next turn reconnects, as kombu does.
                self.client.connection.disconnect()
                raise
            except BaseException:
                self._fetch_failed()
                raise
            self._in_flight = None
            if not isinstance(in_flight, fetch.FetchCall):
                # Woken or not, fetch next: a wake-up may have been lost.
                self._expect_messages = True
                raise Empty()
            got = fetch.parse_reply(in_flight, reply)
            self._expect_messages = got.more
            if not got.messages:
                raise Empty()
            self._deliver_fetched(got.messages)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()

    def _fetch_failed(self) -> None:
        """The command in flight failed or is unknown: its acks go out again."""
        in_flight, self._in_flight = self._in_flight, None
        self._expect_messages = True
        if isinstance(in_flight, fetch.FetchCall) and in_flight.acks:
            self.qos.give_back_acks(list(in_flight.acks))

    def _deliver_fetched(self, messages: list[fetch.FetchedMessage]) -> None:
        """Hand every fetched message over, even if one handler raises: each is recorded
        and must reach kombu's list of deliveries, to be acked or handed back."""
        error: BaseException | None = None
        for message in messages:
            # The script took them in kombu's round-robin order; the cycle follows.
            self._queue_cycle.rotate(message.queue)
            try:
                self._deliver_one(message.queue, message.raw, message.start_check)
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error

    def _deliver_one(self, queue: str, raw: str, check: str = "") -> None:
        try:
            payload = envelope_json.loads(raw)
            tag = payload["properties"]["delivery_tag"]
        except (TypeError, ValueError, KeyError):
            logger.critical("dropped a message from %r that is not kombu's: %.4096r", queue, raw)
            return
        start_check.add_to_payload(payload, check)
        with self.qos.delivering_recorded():
            self.connection._deliver(payload, queue)
        if queue in self._no_ack_queues:
            self.qos.forget(tag)

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        """One message for ``basic_get``, moved into the in-flight records by the script."""
        # No start check: a message got so is not run by a worker that checks it.
        call = self._fetch_call([queue], acks=[], limit=1, start_checks=False)
        with self.conn_or_acquire() as client:
            reply = self._fetch_script(keys=call.keys, args=call.args, client=client)
            self._maybe_update_queues_expire(client, queue)
        got = fetch.parse_reply(call, reply)
        if not got.messages:
            raise Empty()
        return envelope_json.loads(got.messages[0].raw)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        try:
            message = self.Message(self._get(queue), channel=self)
        except Empty:
            return None
        if no_ack:
            self.qos.forget(message.delivery_tag)
        else:
            with self.qos.delivering_recorded():
                self.qos.append(message, message.delivery_tag)
        return message

    # -- producing ------------------------------------------------------------

    def create_publish_batch(self, max_size: int) -> Any:
        return self.publish_batch_class(self, max_size)

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        """The message and its queue's wake key, in one round trip."""
        priority = self._get_message_priority(message, reverse=False)
        commands: list[tuple[str, tuple[Any, ...]]] = [
            ("lpush", (self._q_for_pri(queue, priority), envelope_json.dumps(message))),
            ("zadd", (fetch.wake_key(queue, self.sep), {fetch.WAKE_MEMBER: 0})),
        ]
        if self._expires and queue in self._expires:
            names = [self._q_for_pri(queue, step) for step in self.priority_steps]
            names.append(fetch.wake_key(queue, self.sep))
            commands += [("pexpire", (name, self._expires[queue])) for name in names]
        publish_batch = kwargs.pop("_publish_batch", None)
        if publish_batch is not None:
            for name, args in commands:
                publish_batch.add(name, *args)
            return
        with self.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
            for name, args in commands:
                getattr(pipe, name)(*args)
            pipe.execute()

    def _do_restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)
        try:
            queues = self._lookup(exchange, routing_key)
        except self.connection_errors:
            raise
        except Exception:
            return  # kombu logged it: the message could not be routed
        for queue in queues:
            pipe.zadd(fetch.wake_key(queue, self.sep), {fetch.WAKE_MEMBER: 0})

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        super()._delete(queue, *args, **kwargs)
        with self.conn_or_acquire(client=kwargs.get("client")) as client:
            client.delete(fetch.wake_key(queue, self.sep))


class Transport(kombu_redis.Transport):
    Channel = Channel

    # Set once an event loop polls this transport: from then on its turns send acks.
    acks_batched = False
    # The tick this transport put on the event loop, replaced when it registers again.
    _tick: Callable[[], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cycle = Poller()  # type: ignore[assignment]

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        ticks_before = set(loop.on_tick)
        super().register_with_event_loop(connection, loop)
        self._replace_kombus_tick(loop, set(loop.on_tick) - ticks_before)
        self.acks_batched = True

    def _replace_kombus_tick(self, loop: Any, added: set[Any]) -> None:
        # kombu's tick adds a reader for every socket on every turn: one epoll_ctl
        # that fails with EEXIST per socket and turn, about 4.5 % of a worker main
        # process's CPU. Ours adds only what the loop does not read yet.
        if len(added) != 1:
            logger.warning(
                "kombu added %d event-loop tick callbacks where one was expected; "
                "keeping them, at the cost of one poller call per socket and turn",
                len(added),
            )
            return
        loop.on_tick.difference_update(added)
        # Registered again (a reconnect): the tick of the last registration goes, as
        # kombu's own would stay, one more poll start per turn for each reconnect.
        loop.on_tick.discard(self._tick)
        self._tick = self._poll_start(loop)
        loop.on_tick.add(self._tick)

    def _poll_start(self, loop: Any) -> Callable[[], None]:
        """The tick that starts each poll: the poller's commands and acks, then a
        reader for each socket the loop does not read with this transport's callback.

        The loop forgets a socket when kombu removes it (a disconnect, a paused
        reply), so a new socket, or a new one on the same fd number, is added on
        the next turn. kombu's poller already put each new socket in the epoll
        set; the reader entry is what makes the loop call back.
        """
        cycle: Poller = self.cycle  # type: ignore[assignment]  # set in __init__
        readers = loop.readers
        add_reader = loop.add_reader
        on_readable = self.on_readable

        def on_poll_start() -> None:
            cycle.on_poll_start()
            for fd in cycle.fds:
                if readers.get(fd) != (on_readable, (fd,)):
                    add_reader(fd, on_readable, fd)

        return on_poll_start
