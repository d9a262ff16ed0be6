"""A chord of no-op steps and a callback: taskrelay's workflow against Celery's canvas.

Both run on one system as ``taskrelay up`` starts it (topologies.py), in the same
run, on the same task workers and Redis. taskrelay's chord is POSTed to
``/api/workflows`` and its document read until it says ``SUCCESS``; the canvas's
is ``chord(group(noop.s(), ...), noop.si())`` sent with Celery's own API from this
process, and its result waited for with ``AsyncResult.get``. The callback ignores
the group's results in both (``immutable``), as ``noop`` takes no argument. The
two alternate, repetition after repetition, so a slow minute of the machine falls
on both; the median of each is reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import httpx
from celery import Celery, chord, group

from taskrelay.bench.errors import BenchError
from taskrelay.bench.results import Row, Section
from taskrelay.bench.servers import HOST
from taskrelay.bench.stack import Stack, wait_until
from taskrelay.bench.stats import ms, rate
from taskrelay.bench.topologies import start_taskrelay_up
from tasks import registry, task_modules
from tasks.app_factory import create_celery_app

TASK = "noop"
# Any chord of the benchmark ends far sooner; the timeout only ends a stuck run, in seconds.
CHORD_TIMEOUT_S = 120.0
# How often taskrelay's workflow document is read while it runs, in seconds.
POLL_INTERVAL_S = 0.01
# One small chord of each before the measured ones: imports, connections, caches.
WARMUP_STEPS = 5
# The target: taskrelay's time within this factor of the canvas's.
TARGET_RATIO = 1.2

TASKRELAY = "taskrelay, POST /api/workflows"
CANVAS = "Celery canvas, chord(group, callback)"
RATIO = "taskrelay time / canvas time"


@dataclass(frozen=True)
class ChordLoad:
    steps: int
    repeats: int
    workers: int  # taskrelay up --concurrency

    def describe(self) -> str:
        return (
            f"chord of {self.steps} no-op steps + callback, x{self.repeats},"
            " taskrelay and Celery canvas"
        )


def run(stack: Stack, load: ChordLoad) -> Section:
    section = Section("chord", f"chord: {load.steps} no-op steps + a callback, POST to SUCCESS")
    stack.flush()
    system = start_taskrelay_up(stack, workers=load.workers, flower=False)
    app = _canvas_app(system.redis_url)
    try:
        with httpx.Client(base_url=f"http://{HOST}:{system.web_port}", timeout=30) as http:
            _taskrelay_chord(http, WARMUP_STEPS)
            _canvas_chord(app, WARMUP_STEPS)
            times: dict[str, list[float]] = {TASKRELAY: [], CANVAS: []}
            for _ in range(load.repeats):
                times[TASKRELAY].append(_taskrelay_chord(http, load.steps))
                times[CANVAS].append(_canvas_chord(app, load.steps))
                system.check_alive(stack)
    finally:
        app.close()
        system.stop(stack)
    note = f"{load.workers} task workers x1 (taskrelay up), median of {load.repeats}"
    for subject, spent in times.items():
        section.rows.append(_row(subject, spent, load, note))
    taskrelay, canvas = statistics.median(times[TASKRELAY]), statistics.median(times[CANVAS])
    section.ratios[RATIO] = taskrelay / canvas if canvas > 0 else None
    section.notes.append(
        f"p50: median time from submit to SUCCESS; p99: the slowest of the {load.repeats};"
        f" target: ratio <= {TARGET_RATIO:g}x"
    )
    return section


def _row(subject: str, spent: list[float], load: ChordLoad, note: str) -> Row:
    median = statistics.median(spent)
    return Row(
        subject,
        rate(load.steps + 1, median),
        "steps/s",
        ms(median),
        ms(max(spent)),
        loss=0.0,
        note=note,
        counts={"steps": load.steps, "repeats": len(spent)},
    )


def _description(steps: int) -> dict[str, Any]:
    return {
        "type": "chord",
        "steps": [{"task": TASK} for _ in range(steps)],
        "callback": {"task": TASK, "immutable": True},
    }


def _taskrelay_chord(http: httpx.Client, steps: int) -> float:
    """Seconds from the POST to the document saying SUCCESS."""
    started = time.perf_counter()
    response = http.post("/api/workflows", json=_description(steps))
    if response.status_code != 202:
        raise BenchError(f"POST /api/workflows answered {response.status_code}: {response.text}")
    path = response.headers["Location"]

    def finished() -> str | None:
        state = str(http.get(path).json()["state"])
        return state if state in ("SUCCESS", "FAILURE", "REVOKED") else None

    state = wait_until(
        finished,
        timeout_s=CHORD_TIMEOUT_S,
        what="the workflow to finish",
        interval_s=POLL_INTERVAL_S,
    )
    spent = time.perf_counter() - started
    if state != "SUCCESS":
        raise BenchError(f"the workflow ended {state}")
    return spent


def _canvas_app(redis_url: str) -> Celery:
    """A Celery app configured as the workers', with their tasks registered."""
    app = create_celery_app(redis_url)
    task_modules.load_configured(app.conf)
    return app


def _canvas_chord(app: Celery, steps: int) -> float:
    """Seconds from apply_async to the callback's result."""
    spec = registry.lookup(TASK)
    if spec is None:
        raise BenchError(f"the task {TASK!r} is not registered")
    name = spec.celery_name
    started = time.perf_counter()
    header = group(app.signature(name) for _ in range(steps))
    result = chord(header, app.signature(name, immutable=True)).apply_async()
    result.get(timeout=CHORD_TIMEOUT_S, interval=POLL_INTERVAL_S)
    spent = time.perf_counter() - started
    if result.state != "SUCCESS":
        raise BenchError(f"the canvas chord ended {result.state}")
    return spent
