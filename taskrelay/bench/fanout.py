"""Fan-out: K SSE subscribers of one channel at M messages/s, beside raw redis-py subscribers.

taskrelay's path is the whole of it: POST /api/channels/<c>/messages, the relay
task, the web's one pattern subscription, each SSE client. The baseline PUBLISHes
straight to Redis and its subscribers read Redis directly.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from taskrelay import roles
from taskrelay.bench import loadgen, subscribers, task_client
from taskrelay.bench.errors import BenchError
from taskrelay.bench.httpclient import Request
from taskrelay.bench.results import Row, Section
from taskrelay.bench.servers import HOST, start_taskrelay_web
from taskrelay.bench.stack import PYTHON, Stack
from taskrelay.bench.stats import ms, rate, ratio
from taskrelay.bench.workers import WorkerSetup, start_consuming_workers

CHANNEL = "bench.fanout"
READY_TIMEOUT_S = 60.0
WARMUP_INTERVAL_S = 0.2
WARMUP_POST_TIMEOUT_S = 5.0
# How long subscribers may take, after the last publish, to receive everything.
DRAIN_GRACE_S = 15.0

TASKRELAY = "taskrelay SSE subscribers"
# The relay worker as taskrelay up runs it (taskrelay/roles.py).
RELAY_SETUP = WorkerSetup(workers=1, pool=roles.RELAY_POOL, concurrency=1)
RAW = "raw redis-py subscribers"


@dataclass(frozen=True)
class FanoutLoad:
    subscribers: int
    per_s: float
    duration_s: float

    @property
    def messages(self) -> int:
        return max(1, round(self.per_s * self.duration_s))


def channels_api_present() -> bool:
    return importlib.util.find_spec("webapp.channels.api") is not None


def run(stack: Stack, load: FanoutLoad) -> Section:
    title = f"fan-out: {load.subscribers} subscribers, {load.per_s:g} messages/s"
    section = Section("fanout", title)
    if not channels_api_present():
        section.unavailable = "not available: this build has no channels API"
        return section
    section.rows.append(measure_taskrelay(stack, load))
    section.rows.append(measure_raw(stack, load))
    ours, raw = section.rows
    section.ratios[f"{TASKRELAY} / {RAW} (deliveries/s)"] = ratio(ours.rate, raw.rate)
    return section


def measure_taskrelay(stack: Stack, load: FanoutLoad) -> Row:
    stack.flush()
    web, port = start_taskrelay_web(stack)
    relays = start_consuming_workers(stack, "relay", RELAY_SETUP)
    base = f"http://{HOST}:{port}"
    path = f"/api/channels/{CHANNEL}/messages"
    try:
        if httpx.post(base + path, json={"data": {"seq": -1, "sent_at": 0}}).status_code != 202:
            raise BenchError(f"POST {path} was not accepted; see {web.log_path}")

        def warm(seq: int) -> None:
            # A warm-up POST that times out is tried again; the ready timeout bounds it.
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(base + path, json={"data": _payload(seq)}, timeout=WARMUP_POST_TIMEOUT_S)

        def publish_all() -> int:
            template = Request.build(HOST, port, "POST", path, None)
            answers = loadgen.fire_at_rate(
                lambda i: template.with_body("POST", path, _payload_body(i)),
                load.per_s,
                load.messages,
            )
            return sum(1 for answer in answers if answer.status == task_client.ACCEPTED)

        summary, accepted = _with_subscribers("sse", base, load, warm, publish_all)
    finally:
        stack.stop(*relays, web)
    return _row(TASKRELAY, summary, load, accepted, "POST -> relay task -> PSUBSCRIBE -> SSE")


def measure_raw(stack: Stack, load: FanoutLoad) -> Row:
    stack.flush()
    client = stack.client()
    try:

        def warm(seq: int) -> None:
            client.publish(CHANNEL, json.dumps({"seq": seq, "sent_at": time.time()}))

        def publish_all() -> int:
            started = time.perf_counter()
            for i in range(load.messages):
                delay = started + i / load.per_s - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                client.publish(CHANNEL, json.dumps(_payload(i)))
            return load.messages

        summary, accepted = _with_subscribers("redis", stack.url, load, warm, publish_all)
    finally:
        client.close()
    return _row(RAW, summary, load, accepted, "PUBLISH -> SUBSCRIBE, nothing retained")


def _payload(seq: int) -> dict[str, float]:
    return {"seq": seq, "sent_at": time.time()}


def _payload_body(seq: int) -> dict[str, Any]:
    return {"data": _payload(seq)}


def _row(subject: str, summary: dict[str, Any], load: FanoutLoad, accepted: int, note: str) -> Row:
    """Loss counts the deliveries missing of the messages accepted. A POST that got no
    answer (the load generator's keep-alive connection closed under it by the web's idle
    bound, say) was not accepted: the publisher knows, so it is reported apart."""
    if accepted == 0:
        raise BenchError(f"{subject}: no message was accepted")
    expected = load.subscribers * accepted
    refused = load.messages - accepted
    if refused:
        note = f"{note}; {refused} of {load.messages} POSTs not accepted"
    return Row(
        subject,
        rate(summary["deliveries"], summary["window_s"]),
        "deliveries/s",
        ms(summary["p50_s"]),
        ms(summary["p99_s"]),
        # A POST whose answer was lost may still have been delivered: never below 0.
        loss=max(0.0, 1 - summary["distinct"] / expected),
        note=note,
    )


def _with_subscribers(
    kind: str,
    target: str,
    load: FanoutLoad,
    warm: Callable[[int], None],
    publish_all: Callable[[], int],
) -> tuple[dict[str, Any], int]:
    """Start the subscriber process, warm it up, publish, and return its summary."""
    deadline_s = READY_TIMEOUT_S + load.duration_s + DRAIN_GRACE_S
    argv = [
        PYTHON,
        "-m",
        subscribers.__name__,
        kind,
        target,
        CHANNEL,
        str(load.subscribers),
        str(load.messages),
        str(deadline_s),
    ]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(process, lines), daemon=True)
    reader.start()
    try:
        _expect(lines, "connected", READY_TIMEOUT_S)
        _warm_until_ready(lines, warm)
        accepted = publish_all()
        return dict(json.loads(_expect(lines, "{", load.duration_s + deadline_s))), accepted
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.strip())
    lines.put("")  # the process ended


def _expect(lines: queue.Queue[str], start: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line == "":
            raise BenchError("the subscriber process ended early")
        if line.startswith(start):
            return line
    raise BenchError(f"the subscribers did not say {start!r} within {timeout_s:g} s")


def _warm_until_ready(lines: queue.Queue[str], warm: Callable[[int], None]) -> None:
    """Publish warm-up messages until every subscriber has received one."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        warm(-1)
        try:
            line = lines.get(timeout=WARMUP_INTERVAL_S)
        except queue.Empty:
            continue
        if line == "ready":
            return
        if line == "":
            raise BenchError("the subscriber process ended early")
    raise BenchError(f"the subscribers were not all live within {READY_TIMEOUT_S:g} s")
