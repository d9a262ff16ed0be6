# kombu is untyped: every call into it would need its own ignore.
# mypy: disable-error-code="no-untyped-call"
"""A task message and the caller's own Redis writes, committed in one MULTI/EXEC.

kombu's ``Producer.batch()`` buffers the final Redis commands of each publish in a
pipeline that the transport makes (``Channel.create_publish_batch``) and runs them
when the batch ends. taskrelay's transport makes that pipeline a transaction and
lends it to the caller through ``transaction()``, so the web queues a task's record
on the same MULTI/EXEC as its message: a web process that dies in between leaves
neither, and accepting a task is one round trip. The message itself is still built
by Celery and serialized by kombu; only where its commands run changes. Batches of
one process that are ready at the same time share that round trip: one MULTI/EXEC
carries them all (tasks/group_commit.py).

One part of such a MULTI/EXEC can fail alone: a Lua step that Redis answers
NOSCRIPT (it forgot its scripts: a restart, SCRIPT FLUSH, a failover), as Redis
answers that inside EXEC and commits the rest. The pipeline then runs that step
whole right after, before the batch ends (tasks/scripts.py), so the caller still
gets every reply. The record and the message hold no script call; they commit
together or not at all as before. The step only writes the task index and the
accepted-tasks counter, which the record does not depend on: had the process died
between the two round trips, the task would be accepted, sent and readable by id,
only missing from the lists and the count; a worker that ends the task in between
leaves its state for the step to index (tasks/task_index.py). A
Redis that cannot be reached for the second one fails the batch, as a lost reply
to EXEC does: the caller learns that delivery is uncertain.

Uncertain is what a failure after the first byte is written has to mean: a
MULTI/EXEC sent to a Redis that then stops answering (frozen, a network that drops
the reply) may still run once Redis reads it. So the batch takes its connection
before it writes anything: a Redis that cannot be reached then raises as itself
(``group_commit.NothingSent``: nothing was sent), and any later failure raises
``DeliveryUncertain``, which the caller must not report as "nothing was enqueued".
A transaction that Redis refused because a WATCHed key changed (``WatchError``) ran
nothing and raises as itself too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from celery import Celery
from kombu.exceptions import BatchPublishError
from kombu.transport import redis as kombu_redis
from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError

from tasks import group_commit

# The batch that the current publish opened, for the caller to add its commands to.
_open_batch: ContextVar[TransactionalPublishBatch | None] = ContextVar(
    "taskrelay_open_publish_batch", default=None
)


class DeliveryUncertain(RedisConnectionError):
    """The MULTI/EXEC was sent, and Redis did not confirm it: it may run or not.

    A redis-py ``ConnectionError``, so that a caller that knows only "Redis cannot be
    reached" handles it as before; a caller that can say more catches it first.
    """


class TransactionalPublishBatch(kombu_redis.PublishBatch):
    """kombu's publish batch, run as MULTI/EXEC so that it commits whole or not at all."""

    def __init__(self, channel: Any, max_size: int) -> None:
        super().__init__(channel, max_size)
        # redis-py wraps a pipeline's commands in MULTI/EXEC when this flag is set.
        self.pipeline.transaction = True
        # Run with the process's other transactions that are ready at the same time.
        self.pipeline.execute = group_commit.GroupedExecute(self.pipeline)
        _open_batch.set(self)


class Transaction:
    """The pipeline that a batch's publishes were queued on, once one was made."""

    def pipeline(self) -> Pipeline | None:
        """The batch's MULTI pipeline; None if the transport publishes without batches."""
        batch = _open_batch.get()
        return None if batch is None else batch.pipeline


def lends_transactions(app: Celery) -> bool:
    """Whether the app's broker transport makes its publish batches with this module.

    kombu's Redis transport also declines to batch when its settings would send a
    timed-out pipeline again; that is read here without connecting.
    """
    with app.connection_for_write() as connection:
        transport = connection.transport
        # Transports without virtual channels (RabbitMQ's) have no Channel class.
        channel_class = getattr(transport, "Channel", None)
        batch_class = getattr(channel_class, "publish_batch_class", None)
        return batch_class is TransactionalPublishBatch and bool(
            getattr(transport, "supports_batch_publish", False)
        )


@contextmanager
def transaction(producer: Any) -> Iterator[Transaction]:
    """Publishes through ``producer`` inside, and commands added to the lent pipeline,
    run as one MULTI/EXEC when the block ends (nothing runs if it raises).

    A Redis that could not be reached before anything was sent raises as itself,
    as does a ``WatchError`` (Redis ran nothing); a Redis error once the commands
    were written raises ``DeliveryUncertain``, from that error.
    """
    token = _open_batch.set(None)
    try:
        with producer.batch():
            yield Transaction()
    except BatchPublishError as error:
        cause = error.__cause__
        if isinstance(cause, WatchError | group_commit.NothingSent):
            raise cause from None
        if isinstance(cause, RedisError):
            raise DeliveryUncertain(str(cause)) from cause
        raise
    finally:
        _open_batch.reset(token)
