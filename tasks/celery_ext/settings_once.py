"""Celery settings read on every message or task, looked up in ``app.conf`` once per app.

A lookup in ``app.conf`` goes through its attribute fallback and tries each of its
maps in turn, raising ``KeyError`` in each that lacks the key: ``task_repr_maxlevels``
(left at Celery's default) costs about 7.6 µs by timeit, ``taskrelay_redis_url`` 3.7 µs,
``task_send_sent_event`` 2.7 µs, against 0.2 µs here. The web looked two up for each
message it built (5 % of a ``POST /api/tasks``'s instructions), the workers one for each
task's start. Celery's own sender reads its defaults once, when it is built
(``AMQP._create_task_sender``); these are read at an app's first use of each, so a later
change is not seen here, as it is not there.
"""

from __future__ import annotations

import weakref
from typing import Any

from celery import Celery

_read: weakref.WeakKeyDictionary[Celery, dict[str, Any]] = weakref.WeakKeyDictionary()


def get(app: Celery, name: str) -> Any:
    """``app.conf[name]``, as it was when first asked for."""
    values = _read.get(app)
    if values is None:
        values = _read[app] = {}
    try:
        return values[name]
    except KeyError:
        value = values[name] = app.conf[name]
        return value
