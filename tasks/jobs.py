"""The tasks HTTP may trigger. To add one, write a function here with ``@http_task``.

Tasks take plain JSON values, stay thin and are idempotent: a task may run again
after its worker died, so running it twice must do no harm.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from celery.utils.log import get_task_logger

from tasks import defaults
from tasks.declare import http_task
from tasks.errors import TaskrelayError, TransientError
from tasks.registry import Bounds

logger = get_task_logger(__name__)


class DeliberateFailure(TaskrelayError):
    """Raised by ``always_fails``: a failure no retry can fix."""


@http_task()
def consume(number: Annotated[int, Bounds(minimum=-(10**12), maximum=10**12)]) -> dict[str, int]:
    """The article's task: take a number off the queue and report it."""
    # The article's line, at DEBUG like Celery's own per-task lines (task_log.py):
    # at INFO it cost a no-op task 6 % of its pool child's CPU.
    logger.debug("Task get %s", number)
    return {"consumed": number}


@http_task(bind=True)
def long_task(
    self: Any,
    steps: Annotated[int, Bounds(minimum=1, maximum=1000)] = 10,
    delay_s: Annotated[float, Bounds(minimum=0, maximum=10)] = 0.5,
) -> dict[str, int]:
    """Work through `steps` steps of `delay_s` seconds each, reporting progress."""
    for step in range(1, steps + 1):
        time.sleep(delay_s)
        self.update_state(
            state="PROGRESS",
            meta={"current": step, "total": steps, "message": f"step {step} of {steps}"},
        )
    return {"steps": steps}


@http_task(
    bind=True,
    autoretry_for=(TransientError,),
    retry_backoff=defaults.RETRY_BACKOFF_BASE_S,
    retry_backoff_max=defaults.RETRY_BACKOFF_MAX_S,
    retry_jitter=True,
    max_retries=defaults.RETRY_MAX_ATTEMPTS,
)
def flaky(self: Any, failures: Annotated[int, Bounds(minimum=0, maximum=10)] = 2) -> dict[str, int]:
    """Fail the first `failures` attempts with a transient error, then succeed.

    More failures than the retry limit allows end in the dead letters.
    """
    attempt = self.request.retries + 1
    if attempt <= failures:
        raise TransientError(f"attempt {attempt} failed on purpose")
    return {"attempts": attempt}


@http_task()
def always_fails(message: str = "this task always fails") -> None:
    """Fail at once with an error no retry can fix; it lands in the dead letters."""
    raise DeliberateFailure(message)


@http_task()
def noop() -> None:
    """Do nothing: the benchmark's unit of work."""
