"""``@http_task``: the one step that makes a function a task HTTP may trigger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task

from tasks import registry
from tasks.celery_ext.tracking import TrackedTask
from tasks.names import celery_name as celery_name_of
from tasks.queues import TASK_QUEUE


def http_task(
    *, queue: str = TASK_QUEUE, bind: bool = False, **celery_options: Any
) -> Callable[[Callable[..., Any]], Any]:
    """Declare a Celery task and register it, with its signature, for HTTP.

    Parameters must be annotated with JSON types (``int``, ``float``, ``str``,
    ``bool``, ``list``, ``dict``), optionally ``Annotated[..., Bounds(...)]``;
    the docstring becomes the description shown by ``GET /api/registry``.
    """

    def decorate(fn: Callable[..., Any]) -> Any:
        celery_name = celery_name_of(fn.__name__)
        registry.register(
            registry.spec_from_function(
                fn, name=fn.__name__, celery_name=celery_name, queue=queue, bound=bind
            )
        )
        return shared_task(name=celery_name, bind=bind, base=TrackedTask, **celery_options)(fn)

    return decorate
