"""The bounded buffer between a process's one Redis reader and each SSE stream it feeds.

The reader never waits on a client: it offers each item to every stream's buffer,
and a stream whose buffer is full is cut off instead (it ends, and its client
resumes with Last-Event-ID). The channel hub and the task feed both hand items on
this way (and stop reading a while after their last stream has gone: idle_reader.py).
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class ClientBuffer(Generic[T]):
    capacity: int
    cut_off: bool = False  # its buffer filled: end the stream, the client resumes
    _queue: queue.Queue[T] = field(init=False)

    def __post_init__(self) -> None:
        self._queue = queue.Queue(maxsize=self.capacity)

    def offer(self, item: T) -> bool:
        """Hand on an item without waiting; False (and cut off) once the buffer is full."""
        if self.cut_off:
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.cut_off = True
            return False
        return True

    def next(self, timeout_s: float) -> T | None:
        """The next item, waiting up to ``timeout_s`` for it."""
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def ready(self, limit: int) -> list[T]:
        """Up to ``limit`` items that are waiting already, without blocking."""
        items: list[T] = []
        while len(items) < limit:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def take(self, timeout_s: float, limit: int) -> list[T]:
        """What is waiting (up to ``limit``), waiting up to ``timeout_s`` for the first."""
        first = self.next(timeout_s)
        return [] if first is None else [first, *self.ready(limit - 1)]
