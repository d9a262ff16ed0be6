# kombu and Celery are untyped: every call into them would need its own ignore.
# mypy: disable-error-code="no-untyped-call"
"""A task message published into an open Redis publish batch, the way send_task would.

The web sends each accepted task inside the MULTI/EXEC that also writes its record
(tasks/celery_ext/atomic_publish.py). ``Celery.send_task`` spends most of its time on
what that one case never needs: warnings for eager mode, RabbitMQ's native delayed
delivery for quorum queues, expiry arithmetic, a parent task to link to, and the
``AsyncResult`` it builds and returns (measured: 225 µs of Python per call against
about 150 µs for the steps below). This module takes the steps that do apply, in
send_task's order and through the same Celery objects: the task class's own options,
the app's router, ``app.amqp.create_task_message`` (Celery's protocol code builds the
message) and ``app.amqp.send_task_message`` (its producer path, signals included).

A task whose class sets ``expires`` still goes through send_task, which converts a
date or string there; nothing taskrelay declares does.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from tasks.celery_ext import argument_repr, settings_once


def send_in_batch(
    app: Celery,
    producer: Any,
    name: str,
    *,
    task_id: str,
    kwargs: dict[str, Any],
    queue: str,
    countdown: int | None,
    priority: int | None,
    declare: list[Any] | None,
) -> None:
    """Publish task ``name`` on ``producer``, whose batch is open, as send_task would."""
    # kombu's retry wraps a publish that does I/O; in the batch the message only joins
    # the MULTI/EXEC, whose failure the caller reports (atomic_publish.py). Only the
    # first publish to a queue declares it (``declare`` None) on the wire, and retries.
    explicit = {"queue": queue, "priority": priority, "retry": declare != [], "declare": declare}
    task_type = app.tasks.get(name)
    class_options = _class_options(task_type)
    if "expires" in class_options:
        app.send_task(
            name, kwargs=kwargs, task_id=task_id, countdown=countdown, producer=producer, **explicit
        )
        return
    # As send_task: what the call says wins over the task class's options.
    options = dict(class_options, **explicit)
    time_limit = options.pop("time_limit", None)
    soft_time_limit = options.pop("soft_time_limit", None)
    ignore_result = options.pop("ignore_result", None)
    options = app.amqp.router.route(options, name, (), kwargs, task_type)
    message = app.amqp.create_task_message(
        task_id,
        name,
        (),
        kwargs,
        countdown,
        reply_to=app.thread_oid,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        create_sent_event=settings_once.get(app, "task_send_sent_event"),
        ignore_result=ignore_result,
        # The texts Celery's saferepr writes, without its walk where repr agrees.
        argsrepr=argument_repr.NO_ARGS_REPR,
        kwargsrepr=argument_repr.kwargs_repr(
            kwargs,
            maxsize=app.amqp.kwargsrepr_maxsize,
            maxlevels=settings_once.get(app, "task_repr_maxlevels"),
        ),
        **options,
    )
    for stamp in options.pop("stamped_headers", []):
        options.pop(stamp)
    app.amqp.send_task_message(producer, name, message, **options)


def _class_options(task_type: Any) -> dict[str, Any]:
    """The options a task class sets for its calls (Celery caches them per class)."""
    get_options = getattr(task_type, "_get_exec_options", None)
    if get_options is None:
        return {}
    return {key: value for key, value in get_options().items() if value is not None}
