"""The progress display: one line per step, and a ticking clock while a step runs."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

TICK_INTERVAL_S = 0.5


class Progress:
    """Prints ``[step/total] what ... result``; on a terminal the step's clock ticks."""

    def __init__(self, total_steps: int, stream: TextIO = sys.stderr) -> None:
        self.total_steps = total_steps
        self.stream = stream
        self.done_steps = 0
        self.started = time.monotonic()
        self.live = stream.isatty()

    @contextmanager
    def step(self, what: str) -> Iterator[StepReport]:
        self.done_steps += 1
        prefix = f"[{self.done_steps}/{self.total_steps}] {what}"
        report = StepReport()
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(prefix, stop), daemon=True)
        step_started = time.monotonic()
        if self.live:
            ticker.start()
        else:
            self._write(f"{prefix} ...\n")
        try:
            yield report
        finally:
            stop.set()
            if ticker.is_alive():
                ticker.join()
            took = time.monotonic() - step_started
            outcome = report.text or "done"
            start = "\r\033[K" if self.live else ""
            self._write(f"{start}{prefix}: {outcome} ({took:.1f} s)\n")

    def note(self, text: str) -> None:
        self._write(f"      {text}\n")

    def _tick(self, prefix: str, stop: threading.Event) -> None:
        step_started = time.monotonic()
        while not stop.wait(TICK_INTERVAL_S):
            total = time.monotonic() - self.started
            took = time.monotonic() - step_started
            self._write(f"\r\033[K{prefix} ... {took:.0f} s (run {total:.0f} s)")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


class StepReport:
    """What a finished step prints after its name."""

    def __init__(self) -> None:
        self.text = ""
