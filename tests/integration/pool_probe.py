"""Loaded into a test worker (``--include``): counts its event loop's poller calls per
file descriptor and writes them, with the pool children's pipes, to the file named by
``TASKRELAY_TEST_POOL_PROBE`` a few times a second.

A call "changes nothing" when it adds a descriptor the poller already watches (the
kernel answers EEXIST) or removes one it does not watch (ENOENT). Which descriptors
the poller watches is followed from the calls themselves, starting from what the hub
holds when the worker is ready.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from celery.signals import worker_ready
from kombu.asynchronous import get_event_loop
from kombu.utils.compat import fileno

PROBE_FILE_ENV = "TASKRELAY_TEST_POOL_PROBE"
WRITE_INTERVAL_S = 0.1


class PollerCalls:
    """The hub's poller, with its calls counted by descriptor."""

    def __init__(self, hub: Any) -> None:
        poller = hub.poller
        self.watched = set(hub.readers) | set(hub.writers)
        self.adds: Counter[int] = Counter()
        self.removes: Counter[int] = Counter()
        self.no_change: Counter[int] = Counter()
        self._register = poller.register
        self._unregister = poller.unregister
        poller.register = self.register
        poller.unregister = self.unregister

    def register(self, fd: Any, events: int) -> Any:
        number = fileno(fd)
        self.adds[number] += 1
        if number in self.watched:
            self.no_change[number] += 1
        self.watched.add(number)
        return self._register(fd, events)

    def unregister(self, fd: Any) -> Any:
        number = fileno(fd)
        self.removes[number] += 1
        if number not in self.watched:
            self.no_change[number] += 1
        self.watched.discard(number)
        return self._unregister(fd)


def children(consumer: Any) -> list[dict[str, Any]]:
    """The pool's live children and the main process's ends of their pipes."""
    return [
        {
            "pid": proc.pid,
            "inqueue": proc.inqW_fd,
            "outqueue": proc.outqR_fd,
            "sentinel": getattr(proc, "_sentinel_poll", None),
        }
        for proc in list(consumer.pool._pool._pool)
        if proc.exitcode is None
    ]


@worker_ready.connect
def start_counting(sender: Any, **_: Any) -> None:
    target = os.environ.get(PROBE_FILE_ENV)
    if not target:
        return
    hub = get_event_loop()
    calls = PollerCalls(hub)
    sequence = [0]

    def write() -> None:
        sequence[0] += 1
        snapshot = {
            "sequence": sequence[0],
            "children": children(sender),
            "adds": calls.adds,
            "removes": calls.removes,
            "no_change": calls.no_change,
        }
        partial = Path(f"{target}.partial")
        partial.write_text(json.dumps(snapshot))
        partial.replace(target)

    write()
    hub.call_repeatedly(WRITE_INTERVAL_S, write)
