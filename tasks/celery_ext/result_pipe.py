"""A task's end stored without waiting: its script goes out at once, its reply is read later.

Under the inline pool every task's end is one script (tasks/celery_ext/result_backend.py)
whose round trip the worker waited for before it could start the next task: for a
no-op task, the longest wait of its whole path. Here the worker's main thread sends
that script on a connection of the pipe's own and goes on; the replies are read,
all at once, before the worker's next acknowledgements leave for Redis
(tasks/celery_ext/acks.py asks for it): a message is never acknowledged before its
end is known to be stored. A state the script could not store (Redis restarted and
forgot the script, the connection broke) is stored again the ordinary way, with the
backend's retries; if that fails too, the error reaches the transport before any of
those acknowledgements has gone, so the messages are delivered again.

Only what nothing else in the worker reads straight after is sent this way: the end
state of a task outside any workflow (no chord, group, chain or callbacks), stored
by the worker's main thread in the process that enabled the pipe (not in a child
forked for an isolated attempt). Everything else is stored as before: nothing is
stored for a task after its end, so no state of the same task can overtake one
sent here.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

from celery import bootsteps, states
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tasks.errors import TaskrelayError


class ResultNotStored(TaskrelayError, RedisConnectionError):
    """A task's end could not be stored; its message must not be acknowledged.

    A connection error to kombu and Celery: the consumer connects again, as when Redis
    went away, which is what nearly always lies behind it."""


@dataclass(frozen=True)
class Sent:
    """One end state sent and not yet confirmed: enough to store it again."""

    task_id: str
    encoded: str
    state: str
    then: list[list[str]]


class ResultPipe:
    """Sends a backend's end states without waiting; ``confirm`` reads what they did."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._connection: Any = None
        self._unread: list[Sent] = []
        self._broken = False
        # The task consumer's QoS, the one whose acknowledgements wait for confirm.
        self.qos: Any = None

    def takes(self, state: str, request: Any) -> bool:
        """Whether this end state may go out without waiting (see the module's rules)."""
        return (
            state in states.READY_STATES
            and os.getpid() == self.pid
            and threading.current_thread() is threading.main_thread()
            and not _in_a_workflow(request)
        )

    def send(self, sent: Sent) -> None:
        # The task consumer confirms on every turn of its loop that acknowledges, so
        # the unread sends are at most the tasks of one fetch (fetch.MAX_FETCH_BATCH).
        with self._lock:
            self._unread.append(sent)
            if self._broken:
                return  # stored on confirm, with the others
            try:
                if self._connection is None:
                    # Taken from the pool for each run of sends, so that a Sentinel
                    # pool's check of the primary still applies (tasks/connections.py).
                    self._connection = self.backend.client.connection_pool.get_connection()
                connection = self._connection
                words = self.backend.guarded_set_words(
                    sent.task_id, sent.encoded, sent.state, sent.then
                )
                command = connection.pack_command(
                    "EVALSHA", self.backend.guarded_set_script().sha, *words
                )
                # No health check: its PING would read the replies waiting here.
                connection.send_packed_command(command, check_health=False)
            except Exception:
                # Redis did not take it, and the connection may hold replies no more:
                # everything unread is stored the ordinary way on confirm. No send
                # goes on this connection until then (redis-py would open a new
                # socket under it, and the replies would no longer line up).
                self._broken = True

    def confirm(self) -> None:
        """Read every reply; store again, waiting, each state that was not stored.

        Raises ResultNotStored when one still cannot be stored.
        """
        with self._lock:
            self._confirm_locked()

    def _confirm_locked(self) -> None:
        if not self._unread:
            return
        unread, self._unread = self._unread, []
        connection, self._connection = self._connection, None
        broken, self._broken = self._broken, False
        if connection is not None:
            again = unread if broken else _read_replies(connection, unread)
            if broken:
                connection.disconnect()
            self.backend.client.connection_pool.release(connection)
        else:
            again = unread
        for sent in again:
            try:
                self.backend.ensure(
                    partial(self.backend.guarded_set, then=sent.then),
                    (sent.task_id, sent.encoded, sent.state),
                )
            except Exception as exc:
                raise ResultNotStored(
                    f"the {sent.state} of task {sent.task_id} could not be stored: {exc!r}"
                ) from exc


def _read_replies(connection: Any, unread: list[Sent]) -> list[Sent]:
    """The sends whose replies say they may not have stored (or could not be read)."""
    failed = []
    for position, sent in enumerate(unread):
        try:
            connection.read_response()
        except ResponseError:
            failed.append(sent)  # an error reply (NOSCRIPT after a restart): this one only
        except (RedisConnectionError, RedisTimeoutError):
            # redis-py closed the connection: what it did with the rest is unknown.
            return [*failed, *unread[position:]]
    return failed


def _in_a_workflow(request: Any) -> bool:
    """Celery's canvas, or a step of taskrelay's workflows (tasks/celery_ext/tracking.py)."""
    return bool(
        getattr(request, "taskrelay_end_read_after", False)
        or getattr(request, "chord", None)
        or getattr(request, "group", None)
        or getattr(request, "chain", None)
        or getattr(request, "callbacks", None)
        or getattr(request, "errbacks", None)
    )


_pipe: ResultPipe | None = None


def enable(backend: Any, qos: Any) -> None:
    """From now on this process's main thread sends end states without waiting, and
    ``qos`` (the task consumer's) confirms them before its acknowledgements.

    Kept for the process's life: a consumer that connects again names its new QoS,
    and what was sent before stays to be confirmed."""
    global _pipe
    if _pipe is None or _pipe.backend is not backend or _pipe.pid != os.getpid():
        _pipe = ResultPipe(backend)
    _pipe.qos = qos


def active() -> ResultPipe | None:
    return _pipe


def confirm_before_acks(qos: Any) -> None:
    """Called by a QoS before its acknowledgements leave: for the task consumer's, every
    end state sent is stored (or this raises ResultNotStored). Other channels of the
    worker (remote control, events) acknowledge no task and confirm nothing."""
    pipe = _pipe
    if pipe is not None and pipe.qos is qos and os.getpid() == pipe.pid:
        pipe.confirm()


class ResultPipeStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Enables the pipe in a worker where its rules hold: the inline pool runs tasks in
    the main thread, the transport confirms before it acknowledges, and the backend
    is taskrelay's."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, consumer: Any) -> None:
        # An AMQP channel has no QoS object; kombu's virtual channels (Redis) do.
        qos = getattr(consumer.task_consumer.channel, "qos", None)
        backend = consumer.app.backend
        if (
            getattr(consumer.pool, "runs_tasks_in_the_main_thread", False)
            and getattr(qos, "confirms_results_before_acks", False)
            and hasattr(backend, "guarded_set_words")
        ):
            enable(backend, qos)
