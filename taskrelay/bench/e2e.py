"""End to end: ``POST /api/tasks`` at a fixed rate, each timed until its SUCCESS is visible.

SUCCESS is visible when the result backend PUBLISHes it, which is what a
client following ``GET /api/tasks/<id>/events`` is woken by.
"""

from __future__ import annotations

import json
import threading
import time

from taskrelay.bench import loadgen
from taskrelay.bench.drain import WorkerSetup
from taskrelay.bench.errors import BenchError
from taskrelay.bench.httpclient import Request
from taskrelay.bench.results import Row, Section
from taskrelay.bench.servers import HOST, start_taskrelay_web, start_taskrelay_workers
from taskrelay.bench.stack import Stack, wait_until
from taskrelay.bench.stats import ms, percentile, rate
from tasks import keys

SUBMIT_BODY = {"task": "noop"}
SETTLE_TIMEOUT_S = 30.0
WARMUP_TASKS = 20
SUBJECT = "taskrelay submit -> SUCCESS visible"


class SuccessWatcher:
    """Notes when each task's SUCCESS is published, on a thread of its own."""

    def __init__(self, stack: Stack) -> None:
        self.client = stack.client()
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.pubsub.psubscribe(keys.CELERY_RESULT_PREFIX + "*")
        self.seen: dict[str, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        while not self.stopping.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            meta = json.loads(message["data"])
            if meta.get("status") == "SUCCESS":
                self.seen[meta["task_id"]] = time.time()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.pubsub.close()
        self.client.close()


def run(stack: Stack, per_s: float, duration_s: float, setup: WorkerSetup) -> Section:
    section = Section("end_to_end", f"end to end at {per_s:g} tasks/s")
    stack.flush()
    web, port = start_taskrelay_web(stack)
    workers = start_taskrelay_workers(stack, "tasks", setup)
    watcher = SuccessWatcher(stack)
    try:
        request = Request.build(HOST, port, "POST", "/api/tasks", SUBMIT_BODY)
        loadgen.fire_at_rate(lambda i: request, per_s, WARMUP_TASKS)
        count = max(1, round(per_s * duration_s))
        sent = loadgen.fire_at_rate(lambda i: request, per_s, count)
        ids = {json.loads(s.body)["id"]: s for s in sent if s.status == 202}
        wait_until(
            lambda: all(task_id in watcher.seen for task_id in ids),
            timeout_s=SETTLE_TIMEOUT_S,
            what="every submitted task's SUCCESS",
        )
    finally:
        watcher.close()
        stack.stop(*workers, web)
    if not ids:
        raise BenchError("no task was accepted by POST /api/tasks")
    latencies = [watcher.seen[task_id] - s.sent_at for task_id, s in ids.items()]
    span = max(watcher.seen[t] for t in ids) - min(s.sent_at for s in ids.values())
    failed = count - len(ids)
    row = Row(
        SUBJECT,
        rate(len(ids), span),
        "tasks/s",
        ms(percentile(latencies, 0.5)),
        ms(percentile(latencies, 0.99)),
        loss=failed / count,
        note=f"{count} tasks, {setup.describe()}",
    )
    section.rows.append(row)
    submit = [s.latency_s for s in ids.values()]
    section.notes.append(
        f"the POST alone: p50 {ms(percentile(submit, 0.5)):.1f} ms,"
        f" p99 {ms(percentile(submit, 0.99)):.1f} ms"
    )
    return section
