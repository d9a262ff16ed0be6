"""HTTP submit: requests/s and latency of ``POST /api/tasks`` beside the article's ``/prodcons``.

No worker runs, so the web has the machine to itself; the apps run under the
same gunicorn configuration and face the same load generator, whose ceiling
against a null server is measured first. The 20-line template's POST (Celery's
``delay`` behind Flask, nothing else) runs there too: a reference for what
sending a Celery task from a Flask route costs at least. So does the floor
(floor_web.py): taskrelay's web sending a task in the shared MULTI/EXEC as its POST
does, with no record, check or link beside it: what a POST that carries Celery's
message costs before it does anything of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from taskrelay.bench import cpu, loadgen, null_server
from taskrelay.bench.floor_web import PATH as FLOOR_PATH
from taskrelay.bench.httpclient import Request
from taskrelay.bench.results import Row, Section
from taskrelay.bench.servers import (
    HOST,
    start_article_web,
    start_floor_web,
    start_taskrelay_web,
)
from taskrelay.bench.stack import Stack, python_module
from taskrelay.bench.stats import ms, ratio
from taskrelay.bench.topologies import start_template_web
from taskrelay.processes import Child
from taskrelay.waiting import free_port

SUBMIT_BODY = {"task": "noop"}
WARMUP_S = 1.0

CEILING = "load generator ceiling (null server)"
TASKRELAY = "taskrelay POST /api/tasks"
ARTICLE = "article GET /prodcons"
TEMPLATE = "template POST /api/tasks (reference)"
FLOOR = "Celery's message alone, in taskrelay's web (reference)"
# The processes whose CPU a request is counted against.
WEB_ROLE = "server"
REDIS_ROLE = "redis"
LOAD_GENERATOR_ROLE = "load generator"


@dataclass(frozen=True)
class Load:
    connections: int
    duration_s: float


def run(stack: Stack, load: Load, web_env: dict[str, str] | None = None) -> Section:
    section = Section("http_submit", "HTTP submit", cpu_per="request")
    tool = loadgen.available_tool()
    section.notes.append(
        f"load generator: {tool}, {load.connections} connections, {load.duration_s:g} s each"
    )
    section.rows.append(measure_ceiling(stack, load))
    webs: list[tuple[str, Callable[[], tuple[Child, int]], str, str]] = [
        (TASKRELAY, lambda: start_taskrelay_web(stack, web_env), "POST", "/api/tasks"),
        (TEMPLATE, lambda: start_template_web(stack), "POST", "/api/tasks"),
        (FLOOR, lambda: start_floor_web(stack, web_env), "POST", FLOOR_PATH),
        (ARTICLE, lambda: start_article_web(stack, web_env), "GET", "/prodcons"),
    ]
    for subject, start, method, path in webs:
        section.rows.append(measure_web(stack, subject, start, method, path, load))
    rates = {row.subject: row.rate for row in section.rows}
    section.ratios[f"{TASKRELAY} / {ARTICLE}"] = ratio(rates[TASKRELAY], rates[ARTICLE])
    section.ratios[f"{TEMPLATE} / {ARTICLE}"] = ratio(rates[TEMPLATE], rates[ARTICLE])
    section.ratios[f"{FLOOR} / {ARTICLE}"] = ratio(rates[FLOOR], rates[ARTICLE])
    section.ratios[f"{ARTICLE} / {CEILING}"] = ratio(rates[ARTICLE], rates[CEILING])
    return section


def measure_web(
    stack: Stack,
    subject: str,
    start: Callable[[], tuple[Child, int]],
    method: str,
    path: str,
    load: Load,
) -> Row:
    """Start a web on a flushed Redis, load it with one request, stop it."""
    stack.flush()
    web, port = start()
    try:
        body = SUBMIT_BODY if method == "POST" else None
        request = Request.build(HOST, port, method, path, body)
        return measure(stack, subject, request, method, path, load, web)
    finally:
        stack.stop(web)


def measure_ceiling(stack: Stack, load: Load) -> Row:
    port = free_port()
    server = stack.start("null-server", python_module(null_server.__name__, str(port)))
    try:
        stack.wait_http(server, f"http://{HOST}:{port}/")
        request = Request.build(HOST, port, "POST", "/api/tasks", SUBMIT_BODY)
        return measure(stack, CEILING, request, "POST", "/api/tasks", load, server)
    finally:
        stack.stop(server)


def measure(
    stack: Stack,
    subject: str,
    request: Request,
    method: str,
    path: str,
    load: Load,
    server: Child,
) -> Row:
    """The server's rate under the load, and what a request cost each process meanwhile:
    the server, the run's Redis and the load generator (this process)."""
    loadgen.run_load(request, method, path, load.connections, WARMUP_S, stack.root)
    pids = {
        role: pid
        for role, pid in ((WEB_ROLE, server.pid), (REDIS_ROLE, stack.redis_server.pid))
        if pid is not None
    }
    before = {**cpu.snapshot(pids), LOAD_GENERATOR_ROLE: cpu.own_seconds()}
    machine_before = cpu.machine()
    result = loadgen.run_load(request, method, path, load.connections, load.duration_s, stack.root)
    busy = cpu.busy_cores(machine_before, cpu.machine())
    after = {**cpu.snapshot(pids), LOAD_GENERATOR_ROLE: cpu.own_seconds()}
    note = f"{result.errors} errors" if result.errors else ""
    return Row(
        subject,
        result.rate,
        "req/s",
        ms(result.p50_s),
        ms(result.p99_s),
        note=note,
        cpu_ms_per_task=cpu.per_task_ms(before, after, result.requests) if result.requests else {},
        busy_cores=busy,
    )
