"""Sending workflow steps: each as an ordinary task message, with its task record.

A step's message is the message ``POST /api/tasks`` sends (keyword arguments only,
to the task's queue), plus a header naming its workflow and step, which its worker
reads back (``hooks.py``) and which Celery carries over to retries. Where the broker
lends a transaction (taskrelay's transport on the Redis of the records, see
``tasks/celery_ext/atomic_publish.py``) the messages, their records and the caller's
own bookkeeping commit in one MULTI/EXEC: a process killed in between leaves all of
it or none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from tasks import records, registry
from tasks.celery_ext import atomic_publish
from tasks.errors import InvalidArgument
from tasks.workflows.plan import Step

# The message header that makes a task a workflow's step: "<workflow id>:<step id>".
HEADER = "taskrelay_workflow"


def header_value(workflow_id: str, step_id: str) -> str:
    return f"{workflow_id}:{step_id}"


def membership(request: Any) -> tuple[str, str] | None:
    """(workflow id, step id) of the task a Celery request runs, or None for a plain task."""
    raw = getattr(request, HEADER, None)
    if raw is None:
        headers = getattr(request, "headers", None)
        raw = headers.get(HEADER) if isinstance(headers, dict) else None
    if not isinstance(raw, str):
        return None
    workflow_id, sep, step_id = raw.rpartition(":")
    return (workflow_id, step_id) if sep and workflow_id and step_id.isdigit() else None


class StepNotSendable(InvalidArgument):
    """A step whose input does not fit its task, or whose task this process lacks."""


@dataclass(frozen=True)
class Outgoing:
    """A step ready to be sent: its task and its call, validated."""

    step: Step
    spec: registry.TaskSpec
    # Keyword arguments only, as POST /api/tasks sends them.
    call: dict[str, Any]
    # The positional arguments the record shows: the step's input first, if any.
    args: list[Any]


_NO_INPUT = object()


def prepare(step: Step, value: Any = _NO_INPUT) -> Outgoing:
    """Bind a step's input (``value``, if it receives one) and its own arguments."""
    spec = registry.lookup(step.task)
    if spec is None:
        raise StepNotSendable("task", f"this worker does not know the task {step.task!r}")
    args = list(step.args) if value is _NO_INPUT else [value, *step.args]
    try:
        call = spec.bind(args, step.kwargs)
    except InvalidArgument as error:
        if value is _NO_INPUT:
            raise
        raise StepNotSendable(
            error.field, f"the result it receives does not fit {step.task}: {error.message}"
        ) from None
    return Outgoing(step=step, spec=spec, call=call, args=args)


def _send(app: Celery, workflow_id: str, outgoing: Outgoing, producer: Any = None) -> None:
    app.send_task(
        outgoing.spec.celery_name,
        kwargs=outgoing.call,
        task_id=outgoing.step.task_id,
        queue=outgoing.spec.queue,
        headers={HEADER: header_value(workflow_id, outgoing.step.id)},
        retry=True,
        producer=producer,
    )


def _queue_records(pipe: Any, workflow_id: str, outgoing: Sequence[Outgoing]) -> None:
    submitted_at = records.utc_now_iso()
    for item in outgoing:
        records.save_submission(
            pipe,
            item.step.task_id,
            task=item.step.task,
            args=item.args,
            kwargs=item.step.kwargs,
            submitted_at=submitted_at,
            extra={"workflow": workflow_id, "workflow_step": item.step.path},
        )


# Commands a caller adds to the pipeline of a send: its own bookkeeping.
Bookkeeping = Callable[[Any], None]


def _nothing(pipe: Any) -> None:
    return None


def send_all(
    app: Celery,
    client: redis.Redis,
    workflow_id: str,
    outgoing: Sequence[Outgoing],
    *,
    atomically: bool,
    before: Bookkeeping = _nothing,
    after: Bookkeeping = _nothing,
) -> None:
    """Send the steps with their records, ``before`` and ``after`` queued around them.

    Atomically: all in one MULTI/EXEC. Otherwise ``before`` and the records first,
    then the messages, then ``after``: a failure leaves records without messages
    (the caller undoes them), never a message that ``after`` should have followed.
    """
    if atomically:
        with (
            app.producer_or_acquire() as producer,
            atomic_publish.transaction(producer) as transaction,
        ):
            for item in outgoing:
                _send(app, workflow_id, item, producer=producer)
            pipe = transaction.pipeline()
            if pipe is None:
                raise RuntimeError("the broker transport lent no transaction to publish in")
            before(pipe)
            _queue_records(pipe, workflow_id, outgoing)
            after(pipe)
        return
    with client.pipeline(transaction=False) as pipe:
        before(pipe)
        _queue_records(pipe, workflow_id, outgoing)
        pipe.execute()
    for item in outgoing:
        _send(app, workflow_id, item)
    with client.pipeline(transaction=False) as pipe:
        after(pipe)
        if pipe.command_stack:
            pipe.execute()
