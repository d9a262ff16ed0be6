"""Child processes of ``taskrelay up``: started in order, stopped in groups, gracefully.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only
``taskrelay up``, which then stops the children a group at a time: the web and
Flower together first (no new work), then all the workers together (a warm
shutdown finishes the tasks they hold), and Redis last.
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

# How long a role may take to stop after SIGTERM before it is killed, in seconds.
DEFAULT_STOP_TIMEOUT_S = 30.0


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
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
