"""``taskrelay bench --levers``: each performance lever measured alone against production.

Every lever changes one thing from the production configuration and is drained
(or loaded) in the same run as the production row, so the ratio holds even on
a busy machine.
"""

from __future__ import annotations

from dataclasses import replace

from taskrelay.bench import drain, http_submit
from taskrelay.bench.httpclient import Request
from taskrelay.bench.progress import Progress
from taskrelay.bench.results import Row, Section
from taskrelay.bench.servers import HOST, start_taskrelay_web
from taskrelay.bench.stack import Stack
from taskrelay.bench.stats import ratio
from taskrelay.bench.workers import WorkerSetup

PRODUCTION = WorkerSetup()

WORKER_LEVERS: dict[str, WorkerSetup] = {
    "production (as configured)": PRODUCTION,
    "log level WARNING": replace(PRODUCTION, loglevel="WARNING"),
    "prefetch 1": replace(PRODUCTION, prefetch=1),
    "prefetch 16": replace(PRODUCTION, prefetch=16),
    "prefetch 64": replace(PRODUCTION, prefetch=64),
    "one worker, prefork x2": replace(PRODUCTION, workers=1, concurrency=2),
    "one worker, prefork x1": replace(PRODUCTION, workers=1),
    "4 workers, prefork x1": replace(PRODUCTION, workers=4),
    "one worker, threads x4": replace(PRODUCTION, workers=1, pool="threads", concurrency=4),
    "2 workers, solo": replace(PRODUCTION, pool="solo"),
    "2 workers, prefork": replace(PRODUCTION, env={"TASKRELAY_WORKER_POOL": "prefork"}),
    "task events on": replace(PRODUCTION, events=True),
    "without hiredis": replace(PRODUCTION, hiredis=False),
    "with gossip and mingle": replace(PRODUCTION, gossip_and_mingle=True),
    "also without heartbeat": replace(PRODUCTION, extra_args=("--without-heartbeat",)),
}

WEB_LEVERS: dict[str, dict[str, str]] = {
    "production (as configured)": {},
    "gunicorn 4 workers": {"TASKRELAY_WEB_WORKERS": "4"},
    "gunicorn 1 worker": {"TASKRELAY_WEB_WORKERS": "1"},
    "gunicorn 8 threads per worker": {"TASKRELAY_WEB_THREADS": "8"},
    "gunicorn 4 workers x 16 threads": {
        "TASKRELAY_WEB_WORKERS": "4",
        "TASKRELAY_WEB_THREADS": "16",
    },
}


def worker_levers(stack: Stack, tasks: int, progress: Progress) -> Section:
    section = Section("worker_levers", "worker levers (drain, no-op tasks)")
    drain.warm_up(stack, PRODUCTION)
    for name, setup in WORKER_LEVERS.items():
        with progress.step(f"lever: {name}") as report:
            row = drain.drain_taskrelay(stack, name, setup, tasks)
            report.text = f"{row.rate:,.0f} tasks/s"
        section.rows.append(row)
    _ratios_to_first(section)
    return section


def web_levers(stack: Stack, load: http_submit.Load, progress: Progress) -> Section:
    section = Section("web_levers", "web levers (POST /api/tasks)", cpu_per="request")
    for name, env in WEB_LEVERS.items():
        with progress.step(f"lever: {name}") as report:
            stack.flush()
            web, port = start_taskrelay_web(stack, env)
            try:
                request = Request.build(HOST, port, "POST", "/api/tasks", http_submit.SUBMIT_BODY)
                row = http_submit.measure(stack, name, request, "POST", "/api/tasks", load, web)
            finally:
                stack.stop(web)
            report.text = f"{row.rate:,.0f} req/s"
        section.rows.append(row)
    _ratios_to_first(section)
    return section


def _ratios_to_first(section: Section) -> None:
    first: Row = section.rows[0]
    for row in section.rows[1:]:
        section.ratios[f"{row.subject} / {first.subject}"] = ratio(row.rate, first.rate)
