"""End to end over HTTP: taskrelay as ``taskrelay up`` runs it, against the 20-line template.

Throughput: N tasks POSTed by C clients, then every id read with GET until SUCCESS
(task_client.py); tasks/s from the first POST to the last SUCCESS, with the POST's
own p50/p99. Subjects: the template (topologies.py), the template tuned for speed
(tuned.py: what settings alone give its code, a reference for the ratios), taskrelay
with Flower running, taskrelay with Flower not running, measured in that order once
per round. A subject's
row is its median round; its ratio is the median of its rounds' ratios, each against
the template's rate in the same round: on a shared 2-core machine the same subject
moves by a third from one minute to the next, and a round's three measurements share
that minute. Then, on the last system, latency at a steady load: POSTs at a fixed
rate, each timed until its SUCCESS is published.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass

from taskrelay.bench import commandstats, cpu, loadgen, task_client
from taskrelay.bench import tuned as tuned_settings
from taskrelay.bench.errors import BenchError
from taskrelay.bench.httpclient import Request
from taskrelay.bench.results import Row, Section
from taskrelay.bench.servers import HOST
from taskrelay.bench.stack import READY_TIMEOUT_S, Stack, wait_until
from taskrelay.bench.stats import ms, percentile, rate, ratio
from taskrelay.bench.success_watcher import SuccessWatcher
from taskrelay.bench.task_client import TaskLoad
from taskrelay.bench.topologies import (
    TEMPLATE_WEB_WORKERS,
    System,
    flower_knows,
    process_ids,
    start_taskrelay_up,
    start_template,
)
from taskrelay.waiting import log_tail

# The template's task and taskrelay's built-in one both take one number and return it.
SUBMIT_BODY = {"task": "consume", "args": [1]}
WARMUP_TASKS = 20
# Every subject finishes far faster than this; the deadline only ends a stuck run.
SLOWEST_EXPECTED_RATE = 20.0
DEADLINE_GRACE_S = 60.0
SETTLE_TIMEOUT_S = 30.0

TEMPLATE = "20-line template (Flask + Celery)"
TEMPLATE_TUNED = "the template tuned for speed (reference)"
WITH_FLOWER = "taskrelay up (Flower running)"
WITHOUT_FLOWER = "taskrelay up, Flower not running"


@dataclass(frozen=True)
class EndToEndLoad:
    tasks: int
    clients: int
    per_s: float
    duration_s: float
    workers: int  # taskrelay up --concurrency
    rounds: int = 1


def run(stack: Stack, load: EndToEndLoad) -> Section:
    title = f"end to end over HTTP: {load.tasks} tasks from {load.clients} clients"
    section = Section("end_to_end", title)
    rounds: dict[str, list[Row]] = {
        TEMPLATE: [],
        TEMPLATE_TUNED: [],
        WITH_FLOWER: [],
        WITHOUT_FLOWER: [],
    }
    fixed_rate: Row | None = None
    for number in range(1, load.rounds + 1):
        last = number == load.rounds
        rounds[TEMPLATE].append(_measure_template(stack, load))
        rounds[TEMPLATE_TUNED].append(_measure_template(stack, load, tuned=True))
        for subject, flower in ((WITH_FLOWER, True), (WITHOUT_FLOWER, False)):
            stack.flush()
            system = start_taskrelay_up(stack, workers=load.workers, flower=flower)
            try:
                note = f"gunicorn gevent, {load.workers} task workers x1, relay worker"
                note += ", Flower" if flower else ""
                rounds[subject].append(measure(stack, subject, system, load, note, flower=flower))
                if last and not flower:
                    fixed_rate = at_rate(stack, system, load, section.notes)
            finally:
                system.stop(stack)
    section.rows.extend(_median_row(rows) for rows in rounds.values())
    if fixed_rate is not None:
        section.rows.append(fixed_rate)
    for subject in (TEMPLATE_TUNED, WITH_FLOWER, WITHOUT_FLOWER):
        pairs = zip(rounds[subject], rounds[TEMPLATE], strict=True)
        paired = [ratio(row.rate, base.rate) for row, base in pairs]
        found = [value for value in paired if value is not None]
        section.ratios[f"{subject} / {TEMPLATE}"] = statistics.median(found) if found else None
        if load.rounds > 1:
            section.notes.append(
                f"{subject} / template, round by round: "
                + ", ".join("-" if value is None else f"{value:.2f}x" for value in paired)
            )
    if load.rounds > 1:
        section.notes.append(
            f"{load.rounds} rounds of the four subjects; each row is its subject's median "
            "round, each ratio the median of the rounds' ratios"
        )
    section.notes.append(
        "p50/p99: the POST alone (throughput rows); POST to SUCCESS published (fixed-rate row)"
    )
    return section


def _measure_template(stack: Stack, load: EndToEndLoad, *, tuned: bool = False) -> Row:
    stack.flush()
    template = start_template(stack, tuned=tuned)
    try:
        if tuned:
            return measure(stack, TEMPLATE_TUNED, template, load, tuned_settings.describe())
        note = f"gunicorn -w {TEMPLATE_WEB_WORKERS} sync, celery worker at its defaults"
        return measure(stack, TEMPLATE, template, load, note)
    finally:
        template.stop(stack)


def _median_row(rows: list[Row]) -> Row:
    """The round whose rate is the median (the lower of the two middle ones)."""
    by_rate = sorted(rows, key=lambda row: row.rate)
    return by_rate[(len(by_rate) - 1) // 2]


def requests_for(system: System) -> tuple[Request, task_client.ReadRequest]:
    submit = Request.build(HOST, system.web_port, "POST", "/api/tasks", SUBMIT_BODY)

    def read(task_id: str) -> Request:
        return Request.build(HOST, system.web_port, "GET", f"/api/tasks/{task_id}")

    return submit, read


def measure(
    stack: Stack,
    subject: str,
    system: System,
    load: EndToEndLoad,
    note: str,
    *,
    flower: bool = False,
) -> Row:
    submit, read = requests_for(system)
    warm_up(stack, system, flower=flower)
    client = system.client()
    try:
        before = commandstats.snapshot(client)
        cpu_before = cpu.snapshot(process_ids(system))
        machine_before = cpu.machine()
        outcome = task_client.submit_and_confirm(
            submit, read, TaskLoad(load.tasks, load.clients), deadline_s(load.tasks)
        )
        busy = cpu.busy_cores(machine_before, cpu.machine())
        spent = cpu.per_task_ms(cpu_before, cpu.snapshot(process_ids(system)), load.tasks)
        calls = commandstats.per_task(before, commandstats.snapshot(client), load.tasks)
    finally:
        client.close()
    system.check_alive(stack)
    latencies = outcome.submit_latencies_s
    return Row(
        subject,
        rate(outcome.succeeded, outcome.span_s),
        "tasks/s",
        ms(percentile(latencies, 0.5)),
        ms(percentile(latencies, 0.99)),
        loss=(load.tasks - outcome.succeeded) / load.tasks,
        note=note,
        calls_per_task=calls,
        cpu_ms_per_task=spent,
        busy_cores=busy,
        counts={
            "rejected": outcome.rejected,
            "failed": len(outcome.failed),
            "unfinished": len(outcome.unfinished),
        },
    )


def warm_up(stack: Stack, system: System, *, flower: bool) -> None:
    """A few tasks through the whole path; with Flower, until Flower sees task events.

    Flower turns events on in the workers a few seconds after it starts; before
    that, the system under test is not yet the one with Flower running.
    """
    submit, read = requests_for(system)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        outcome = task_client.submit_and_confirm(
            submit, read, TaskLoad(WARMUP_TASKS, 1), READY_TIMEOUT_S
        )
        system.check_alive(stack)
        if outcome.succeeded < WARMUP_TASKS:
            logs = "\n".join(log_tail(child.log_path) for child in system.children)
            raise BenchError(
                f"warm-up tasks did not all succeed ({outcome.succeeded} of {WARMUP_TASKS}; "
                f"rejected {outcome.rejected}, failed {outcome.failed[:3]}, "
                f"unfinished {outcome.unfinished[:3]}):\n{logs}"
            )
        if not flower or flower_knows(system, outcome.ids[-1]):
            return
        if time.monotonic() > deadline:
            raise BenchError(f"Flower saw no task events within {READY_TIMEOUT_S:g} s")


def at_rate(stack: Stack, system: System, load: EndToEndLoad, notes: list[str]) -> Row:
    """POSTs at load.per_s for load.duration_s, each timed until its SUCCESS is published."""
    submit, _ = requests_for(system)
    client = system.client()
    watcher = SuccessWatcher(client)
    count = max(1, round(load.per_s * load.duration_s))
    try:
        loadgen.fire_at_rate(lambda i: submit, load.per_s, WARMUP_TASKS)
        sent = loadgen.fire_at_rate(lambda i: submit, load.per_s, count)
        ids = {json.loads(s.body)["id"]: s for s in sent if s.status == 202}
        wait_until(
            lambda: all(task_id in watcher.seen for task_id in ids),
            timeout_s=SETTLE_TIMEOUT_S,
            what="every submitted task's SUCCESS",
        )
    finally:
        watcher.close()
        client.close()
    system.check_alive(stack)
    if not ids:
        raise BenchError("no task was accepted by POST /api/tasks")
    latencies = [watcher.seen[task_id] - s.sent_at for task_id, s in ids.items()]
    span = max(watcher.seen[t] for t in ids) - min(s.sent_at for s in ids.values())
    submit_latencies = [s.latency_s for s in ids.values()]
    notes.append(
        f"at {load.per_s:g}/s the POST alone: p50 {ms(percentile(submit_latencies, 0.5)):.1f} ms,"
        f" p99 {ms(percentile(submit_latencies, 0.99)):.1f} ms"
    )
    return Row(
        f"{WITHOUT_FLOWER}, {load.per_s:g}/s",
        rate(len(ids), span),
        "tasks/s",
        ms(percentile(latencies, 0.5)),
        ms(percentile(latencies, 0.99)),
        loss=(count - len(ids)) / count,
        note=f"{count} tasks at a fixed rate, POST to SUCCESS published",
    )


def deadline_s(tasks: int) -> float:
    return tasks / SLOWEST_EXPECTED_RATE + DEADLINE_GRACE_S
