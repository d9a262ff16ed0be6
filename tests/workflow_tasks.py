"""Tasks of the workflow tests: loaded by their workers (``TASKRELAY_TASK_MODULES``)
and, so that descriptions naming them validate, by the test modules themselves."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tasks.declare import http_task


@http_task()
def add(x: int, y: int = 0) -> int:
    """Add two numbers: a step whose result the next one can take."""
    return x + y


@http_task()
def total(values: list) -> int:  # type: ignore[type-arg]
    """Sum the numbers in a list, nested lists included: a chord's callback."""
    return _sum(values)


def _sum(values: list[Any]) -> int:
    return sum(_sum(v) if isinstance(v, list) else int(v) for v in values)


@http_task()
def record_step(marker_dir: str, name: str, value: int = 0, seconds: float = 0.0) -> int:
    """Mark marker_dir/name.started, wait `seconds`, mark marker_dir/name; return `value`.

    A test counts the lines to know how often the step started and ran to its end.
    """
    with Path(marker_dir, f"{name}.started").open("a") as started:
        started.write(f"{os.getpid()} {time.time()}\n")
    time.sleep(seconds)
    with Path(marker_dir, name).open("a") as done:
        done.write(f"{os.getpid()} {time.time()}\n")
    return value


@http_task()
def collect(values: list, marker_dir: str, name: str) -> list:  # type: ignore[type-arg]
    """Append the list received, as one JSON line, to marker_dir/name; return it."""
    with Path(marker_dir, name).open("a") as received:
        received.write(json.dumps(values) + "\n")
    return values


def received(marker_dir: Path, name: str) -> list[Any]:
    """Every list `collect` received under this name, one per run."""
    path = marker_dir / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
