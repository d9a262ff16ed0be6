"""A Celery task's message and the caller's own Redis commands, in one MULTI/EXEC.

On taskrelay's Redis transport (``Services.submit_atomically``) the web sends the
messages it enqueues inside a transaction that the transport lends
(tasks/celery_ext/atomic_publish.py): the caller adds its own commands to it, and
both commit when the block ends, in one round trip that the process's other ready
transactions share (tasks/group_commit.py). The message is built and published by
Celery's own code, without what ``send_task`` does for cases the web never has
(tasks/celery_ext/batched_send.py). The task API's POST sends a task with its
record this way; a channel publish sends the relay task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from redis.client import Pipeline

from tasks.celery_ext import atomic_publish, batched_send
from webapp.services import Services

T = TypeVar("T")


def send(
    services: Services,
    name: str,
    *,
    task_id: str,
    kwargs: dict[str, Any],
    queue: str,
    with_commands: Callable[[Pipeline], T],
    countdown: int | None = None,
    priority: int | None = None,
) -> T:
    """Send task ``name`` in a MULTI/EXEC, with the commands ``with_commands`` adds to
    its pipeline; answers what that returns.

    Everything commits together, or nothing if ``with_commands`` raises. Raises as
    ``atomic_publish.transaction`` does: ``DeliveryUncertain`` once the MULTI/EXEC was
    written and not confirmed, the Redis error itself when nothing was sent. (A
    callback rather than a context manager: this is on every POST of a task, and a
    generator's context costs it about 1 % more CPU.)
    """
    with (
        services.producers.lend() as producer,
        atomic_publish.transaction(producer) as transaction,
    ):
        batched_send.send_in_batch(
            services.celery,
            producer,
            name,
            task_id=task_id,
            kwargs=kwargs,
            queue=queue,
            countdown=countdown,
            priority=priority,
            declare=_declare(services, queue),
        )
        services.declared_queues.add(queue)
        pipe = transaction.pipeline()
        if pipe is None:
            raise RuntimeError("the broker transport lent no transaction to publish in")
        return with_commands(pipe)


def _declare(services: Services, queue: str) -> list[Any] | None:
    """What to declare with a message: its queue (Celery's default, None) the first time.

    On taskrelay's Redis transport a queue's binding is kept in Redis, and kombu
    would declare it again with every message, copying the queue object each time
    (about 4 % of a POST's CPU); once per web process is enough. The workers declare
    their queues again whenever they connect.
    """
    return [] if queue in services.declared_queues else None
