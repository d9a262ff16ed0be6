"""Child processes of ``taskrelay up``: started in order, stopped in groups, gracefully.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only
``taskrelay up``, which then stops the children a group at a time: the web and
Flower together first (no new work), then all the workers together (a warm
shutdown finishes the tasks they hold), and Redis last. Each child, and the
embedded Redis, is a role the supervisor (taskrelay/supervisor.py) restarts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from taskrelay import scheduling
from taskrelay.embedded_redis import EmbeddedRedis

# How long a role may take to stop after SIGTERM before it is killed, in seconds.
DEFAULT_STOP_TIMEOUT_S = 30.0
# SIGKILLed leftovers of an exited role are gone within this long.
LEFTOVERS_GONE_TIMEOUT_S = 10.0


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S
    # The Linux scheduling policy the child and everything it starts run under.
    scheduling_policy: scheduling.Policy = scheduling.NORMAL
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The main process's id, once started."""
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        # Logs may hold task arguments and tracebacks: readable by their owner only.
        self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "ab") as log, scheduling.for_children(self.scheduling_policy):
            self.process = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def kill_leftovers(self) -> None:
        """SIGKILL what an exited main process left in its group.

        Orphaned pool children or gunicorn workers serve no one; a gunicorn
        worker would even keep the port from the restarted master. A task an
        orphan held comes back from the broker, as after any worker death.
        """
        if self.process is not None and self.process.poll() is not None:
            kill_group(self.process.pid)

    def terminate(self) -> None:
        """Ask the child to stop (SIGTERM to its main process only).

        Celery's warm shutdown and gunicorn's graceful stop both need the signal
        to reach the main process alone: it lets its own pool finish the work
        in hand, while a SIGTERM to the whole group would kill that pool at once.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait_stopped(self) -> None:
        """Wait for the child to stop after terminate(); SIGKILL what is left after the timeout."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=self.stop_timeout_s)
        # Pool processes of a worker share its group; none may outlive it.
        _wait_group_gone(self.process.pid, self.stop_timeout_s)


def stop_together(children: Sequence[Child]) -> None:
    """Terminate several children at once, then wait for each of them."""
    for child in children:
        child.terminate()
    for child in children:
        child.wait_stopped()


class EmbeddedRedisRole:
    """The embedded Redis as a supervised role: restarted on its port, with its data dir.

    Its append-only file brings back what it held; workers and web reconnect by
    themselves.
    """

    name = "redis"

    def __init__(self, server: EmbeddedRedis) -> None:
        self.server = server
        self._pid: int | None = None

    @property
    def log_path(self) -> Path:
        return self.server.data_dir / "redis.log"

    def start(self) -> None:
        self.server.kill()  # forgets an exited process, after reaping it
        try:
            self.server.start()
        finally:
            self._pid = self.server.pid

    def exit_code(self) -> int | None:
        process = self.server.process
        return None if process is None else process.poll()

    def kill_leftovers(self) -> None:
        # A background save or rewrite child of a dead server would keep writing its files.
        if self._pid is not None and self.exit_code() is not None:
            kill_group(self._pid)


def kill_group(pgid: int) -> None:
    """SIGKILL every process of a group and wait until none is left."""
    _signal_group(pgid, signal.SIGKILL)
    _wait_group_gone(pgid, LEFTOVERS_GONE_TIMEOUT_S)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_group_gone(pgid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
