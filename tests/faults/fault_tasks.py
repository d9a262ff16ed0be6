"""Tasks that misbehave on purpose, loaded only by the fault suite's workers
(``--include tests.faults.fault_tasks``) and by the tests that submit them."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from tasks.declare import http_task


@http_task()
def crash_worker() -> None:
    """Kill the process that runs it, every time: a poison task."""
    os.kill(os.getpid(), signal.SIGKILL)


@http_task()
def record_run(marker_dir: str, name: str, seconds: float = 0.0) -> int:
    """Append one line per run to marker_dir/name after `seconds`; return the pid.

    A test counts the lines to know how often the task really ran.
    """
    with Path(marker_dir, f"{name}.started").open("a") as started:
        started.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    with Path(marker_dir, name).open("a") as marker:
        marker.write(f"{os.getpid()} {time.time()}\n")
    return os.getpid()


@http_task()
def ignore_every_stop(seconds: float) -> None:
    """Sleep `seconds`, swallowing whatever is raised to stop it, time limits included."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(BaseException):  # the point of this task
            time.sleep(left)


@http_task(bind=True)
def retry_once(self: Any, countdown: float) -> int:
    """Retry itself `countdown` seconds later on its first attempt; return the attempt."""
    if self.request.retries == 0:
        raise self.retry(countdown=countdown)
    return int(self.request.retries) + 1
