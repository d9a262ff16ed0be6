"""Worker drain: N no-op tasks queued first, then drained; tasks/s from first to last done.

The rate counts from the first task finished to the last, so worker start-up
is left out for every subject alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import redis
from celery import Celery

from taskrelay.bench import baseline_article, baseline_celery, commandstats, tuned
from taskrelay.bench.errors import BenchError
from taskrelay.bench.results import Row, Section
from taskrelay.bench.servers import start_flower
from taskrelay.bench.stack import Stack, python_module, wait_until
from taskrelay.bench.stats import rate, ratio
from taskrelay.bench.workers import WorkerSetup, start_workers
from taskrelay.processes import Child
from tasks import keys
from tasks.app_factory import create_celery_app
from tasks.names import celery_name
from tasks.queues import TASK_QUEUE

TASKRELAY_NOOP = celery_name("noop")
BASELINE_QUEUE = "celery"
# The slowest subject drains well above this; below it something is wrong.
SLOWEST_EXPECTED_RATE = 40.0
DRAIN_GRACE_S = 60.0
WARM_UP_TASKS = 300
RESULT_POLL_S = 0.2

PRODUCTION = "taskrelay production"
WITH_FLOWER = "taskrelay + Flower (events on)"
CELERY_DEFAULTS = "Celery at its defaults"
CELERY_TUNED = "Celery tuned for speed (reference)"
RAW_LOOP = "article LPUSH/BLPOP loop"


def warm_up(stack: Stack, setup: WorkerSetup) -> None:
    """One short drain whose figure is dropped: the first drain of a run is measured
    cold (fresh Redis, first imports, empty OS caches) and came out low in lever runs."""
    drain_taskrelay(stack, "warm-up", setup, WARM_UP_TASKS)


def run(stack: Stack, tasks: int, processes: int = 2) -> Section:
    section = Section("drain", "worker drain (no-op tasks)")
    production = WorkerSetup(workers=processes)
    warm_up(stack, production)
    section.rows.append(drain_taskrelay(stack, PRODUCTION, production, tasks))
    with_events = WorkerSetup(workers=processes, events=True)
    section.rows.append(drain_taskrelay(stack, WITH_FLOWER, with_events, tasks, flower=True))
    section.rows.append(drain_celery_defaults(stack, tasks))
    section.rows.append(drain_celery_tuned(stack, tasks))
    section.rows.append(drain_raw(stack, tasks, processes))
    defaults = section.row(CELERY_DEFAULTS)
    base = defaults.rate if defaults else None
    for subject in (PRODUCTION, WITH_FLOWER, CELERY_TUNED, RAW_LOOP):
        found = section.row(subject)
        section.ratios[f"{subject} / {CELERY_DEFAULTS}"] = ratio(
            found.rate if found else None, base
        )
    return section


def drain_taskrelay(
    stack: Stack, subject: str, setup: WorkerSetup, tasks: int, *, flower: bool = False
) -> Row:
    stack.flush()
    before = calls_so_far(stack)
    sender = create_celery_app(stack.url, result_backend="disabled", task_send_sent_event=False)
    ids = enqueue(sender, TASKRELAY_NOOP, TASK_QUEUE, tasks)
    children: list[Child] = []
    if flower:
        children.append(start_flower(stack))
    workers = start_workers(stack, "drain", setup)
    children += workers
    try:
        seconds = wait_drained(stack, workers, ids)
        calls = commandstats.per_task(before, calls_so_far(stack), len(ids))
    finally:
        stack.stop(*children)
    note = f"{setup.describe()}, acks late, results stored"
    return Row(subject, rate(len(ids) - 1, seconds), "tasks/s", note=note, calls_per_task=calls)


def drain_celery_defaults(stack: Stack, tasks: int) -> Row:
    argv = python_module("celery", "-A", baseline_celery.__name__, "worker", "-n", "defaults@bench")
    note = "prefork x nproc, prefetch 4, early ack, results stored"
    return drain_celery(stack, tasks, CELERY_DEFAULTS, [argv], note)


def drain_celery_tuned(stack: Stack, tasks: int) -> Row:
    """The same app with the settings of tuned.py: what Celery's settings alone give."""
    argvs = tuned.worker_argvs(baseline_celery.__name__, "bench")
    note = f"{tuned.WORKER_SUMMARY}; early ack, results stored"
    return drain_celery(stack, tasks, CELERY_TUNED, argvs, note)


def drain_celery(
    stack: Stack, tasks: int, subject: str, worker_argvs: list[list[str]], note: str
) -> Row:
    stack.flush()
    before = calls_so_far(stack)
    sender = Celery("sender", broker=stack.url, backend="disabled", set_as_current=False)
    ids = enqueue(sender, baseline_celery.TASK_NAME, BASELINE_QUEUE, tasks)
    workers = [stack.start(f"celery-{number}", argv) for number, argv in enumerate(worker_argvs, 1)]
    try:
        seconds = wait_drained(stack, workers, ids)
        calls = commandstats.per_task(before, calls_so_far(stack), len(ids))
    finally:
        stack.stop(*workers)
    return Row(subject, rate(len(ids) - 1, seconds), "tasks/s", note=note, calls_per_task=calls)


def drain_raw(stack: Stack, tasks: int, processes: int) -> Row:
    stack.flush()
    client = stack.client()
    try:
        before = commandstats.snapshot(client)
        push_raw(client, tasks, processes)
        listeners = [
            stack.start(
                f"raw-listener-{i}",
                python_module(baseline_article.__name__, stack.url),
            )
            for i in range(processes)
        ]
        try:
            raw_reports = wait_until(
                lambda: _raw_reports(client, processes),
                timeout_s=drain_timeout_s(tasks),
                what="the article's listeners to drain their queue",
            )
            calls = commandstats.per_task(before, commandstats.snapshot(client), tasks)
        finally:
            stack.stop(*listeners)
    finally:
        client.close()
    count = int(sum(report["count"] for report in raw_reports))
    first = min(report["first"] for report in raw_reports if report["count"])
    last = max(report["last"] for report in raw_reports)
    note = f"{processes} listener processes, no acks, no results"
    return Row(RAW_LOOP, rate(count - 1, last - first), "tasks/s", note=note, calls_per_task=calls)


def push_raw(client: redis.Redis, tasks: int, listeners: int, chunk: int = 1000) -> None:
    for start in range(0, tasks, chunk):
        with client.pipeline(transaction=False) as pipe:
            for number in range(start, min(start + chunk, tasks)):
                pipe.lpush(baseline_article.QUEUE, number % 10)
            pipe.execute()
    # BLPOP takes from the left, so sentinels pushed on the right come out last.
    client.rpush(baseline_article.QUEUE, *[baseline_article.SENTINEL] * listeners)


def _raw_reports(client: redis.Redis, expected: int) -> list[dict[str, float]] | None:
    raw = client.lrange(baseline_article.REPORTS, 0, -1)
    if len(raw) < expected:
        return None
    return [json.loads(item) for item in raw]


def enqueue(sender: Celery, task_name: str, queue: str, count: int) -> list[str]:
    with sender.producer_or_acquire() as producer:
        return [
            sender.send_task(task_name, queue=queue, producer=producer).id for _ in range(count)
        ]


def calls_so_far(stack: Stack) -> dict[str, int]:
    """The Redis command counts of the run's Redis now (commandstats.per_task compares two)."""
    client = stack.client()
    try:
        return commandstats.snapshot(client)
    finally:
        client.close()


def drain_timeout_s(tasks: int) -> float:
    return tasks / SLOWEST_EXPECTED_RATE + DRAIN_GRACE_S


def wait_drained(stack: Stack, workers: Sequence[Child], ids: Sequence[str]) -> float:
    """Wait until every task succeeded; return the seconds from first to last done."""
    result_keys = [keys.celery_result(task_id) for task_id in ids]
    client = stack.client()

    def finished() -> list[datetime] | None:
        for worker in workers:
            stack.check_alive(worker)
        if client.exists(*result_keys) < len(result_keys):
            return None
        done = [_done_at(meta) for meta in client.mget(result_keys)]
        return None if None in done else [d for d in done if d is not None]

    try:
        done = wait_until(
            finished,
            timeout_s=drain_timeout_s(len(ids)),
            what=f"{', '.join(w.name for w in workers)} to finish {len(ids)} tasks",
            interval_s=RESULT_POLL_S,
        )
    finally:
        client.close()
    return (max(done) - min(done)).total_seconds()


def _done_at(raw: bytes | str | None) -> datetime | None:
    """When the task succeeded; None while it has not; BenchError when it failed."""
    if raw is None:
        return None
    meta = json.loads(raw)
    if meta.get("status") == "FAILURE":
        raise BenchError(f"a benchmark task failed: {meta.get('result')}")
    if meta.get("status") != "SUCCESS":
        return None
    return datetime.fromisoformat(meta["date_done"])
