"""A worker bootstep that runs one small job every few seconds in the event loop.

The lease renewal, the liveness beacon and the relay sweeper are all this: a job
on the worker's timer while the step runs, cancelled when it stops, and a loop
boundary around each run (Redis may be restarting; the next run tries again).
Under the inline pool the keeper thread runs it too while a task holds the loop.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from tasks.celery_ext.inline_pool import keeper_of

logger = logging.getLogger(__name__)


class RepeatingStep(bootsteps.StartStopStep):  # type: ignore[misc]
    # What the log says when a run fails; the next run tries again.
    failure_message = "a repeating worker job failed"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None
        self.keeper_handle: int | None = None

    def interval_s(self, parent: Any) -> float | None:
        """Seconds between runs; None when the job has nothing to do in this worker."""
        raise NotImplementedError

    def run_once(self, parent: Any) -> None:
        raise NotImplementedError

    def start(self, parent: Any) -> None:
        interval_s = self.interval_s(parent)
        if interval_s is not None:
            self.timer_ref = parent.timer.call_repeatedly(interval_s, self.run, (parent,))
            keeper = keeper_of(parent)
            if keeper is not None:  # the inline pool's loop waits while a task runs
                self.keeper_handle = keeper.cover(interval_s, lambda: self.run(parent))

    def stop(self, parent: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        keeper = keeper_of(parent)
        if keeper is not None and self.keeper_handle is not None:
            keeper.uncover(self.keeper_handle)
        self.keeper_handle = None

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)

    def run(self, parent: Any) -> None:
        try:
            self.run_once(parent)
        except Exception:
            logger.warning(self.failure_message, exc_info=True)
