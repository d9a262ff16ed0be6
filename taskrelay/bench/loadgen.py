"""Closed-loop HTTP load: C connections, each sending its next request when the last is answered.

``wrk`` drives the load when it is installed; otherwise the asyncio client in
httpclient.py does. Either way the same generator is first run against a null
server, so the table can show the generator's own ceiling beside the figures.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from taskrelay.bench.errors import BenchError
from taskrelay.bench.httpclient import Connection, Request
from taskrelay.bench.stats import percentile, rate

# wrk runs one thread: on two cores the server under test needs the other.
WRK_THREADS = 1
WRK_GRACE_S = 30.0
OK_STATUSES = range(200, 400)


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_s: float | None
    p99_s: float | None
    tool: str

    @property
    def rate(self) -> float:
        return rate(self.requests, self.seconds)


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


def available_tool() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def run_load(
    request: Request, method: str, path: str, connections: int, duration_s: float, workdir: Path
) -> LoadResult:
    if available_tool() == "wrk":
        return _run_wrk(request, method, path, connections, duration_s, workdir)
    return asyncio.run(_run_python(request, connections, duration_s))


async def _run_python(request: Request, connections: int, duration_s: float) -> LoadResult:
    tally = _Tally()
    started = time.perf_counter()
    deadline = started + duration_s
    await asyncio.gather(*(_one_connection(request, deadline, tally) for _ in range(connections)))
    seconds = time.perf_counter() - started
    lat = tally.latencies
    return LoadResult(
        len(lat), tally.errors, seconds, percentile(lat, 0.5), percentile(lat, 0.99), "python"
    )


async def _one_connection(request: Request, deadline: float, tally: _Tally) -> None:
    connection = Connection(request.host, request.port)
    try:
        while (sent := time.perf_counter()) < deadline:
            try:
                status, _ = await connection.send(request.raw)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                tally.errors += 1
                continue
            if status in OK_STATUSES:
                tally.latencies.append(time.perf_counter() - sent)
            else:
                tally.errors += 1
    finally:
        await connection.close()


def _run_wrk(
    request: Request, method: str, path: str, connections: int, duration_s: float, workdir: Path
) -> LoadResult:
    body = request.raw.partition(b"\r\n\r\n")[2].decode()
    script = workdir / "wrk-request.lua"
    script.write_text(
        f'wrk.method = "{method}"\n'
        f"wrk.body = [[{body}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    argv = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
        "-s",
        str(script),
        f"http://{request.host}:{request.port}{path}",
    ]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration_s + WRK_GRACE_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {duration_s + WRK_GRACE_S:g} s") from None
    if done.returncode != 0:
        raise BenchError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return parse_wrk(done.stdout)


_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk(output: str) -> LoadResult:
    """Requests, errors, duration and p50/p99 from wrk's --latency report."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if total is None:
        raise BenchError(f"could not read wrk's report:\n{output}")
    requests = int(total.group(1))
    seconds = float(total.group(2)) * _UNITS_S[total.group(3)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    return LoadResult(
        requests - (int(bad.group(1)) if bad else 0),
        errors,
        seconds,
        _wrk_percentile(output, "50"),
        _wrk_percentile(output, "99"),
        "wrk",
    )


def _wrk_percentile(output: str, which: str) -> float | None:
    found = re.search(rf"^\s+{which}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    return float(found.group(1)) * _UNITS_S[found.group(2)] if found else None


@dataclass(frozen=True)
class Sent:
    """One request of an open-loop run: when it left (wall clock), its answer, its latency."""

    sent_at: float
    status: int
    body: bytes
    latency_s: float


def fire_at_rate(
    make_request: Callable[[int], Request], per_s: float, count: int, max_connections: int = 64
) -> list[Sent]:
    """Send request i at start + i/per_s whatever earlier answers took (an open loop)."""
    return asyncio.run(_fire_at_rate(make_request, per_s, count, max_connections))


async def _fire_at_rate(
    make_request: Callable[[int], Request], per_s: float, count: int, max_connections: int
) -> list[Sent]:
    idle: list[Connection] = []
    gate = asyncio.Semaphore(max_connections)
    answers: list[Sent] = []

    async def one(request: Request) -> None:
        async with gate:
            connection = idle.pop() if idle else Connection(request.host, request.port)
            sent_wall, sent = time.time(), time.perf_counter()
            try:
                status, body = await connection.send(request.raw)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                status, body = 0, b""
            answers.append(Sent(sent_wall, status, body, time.perf_counter() - sent))
            idle.append(connection)

    started = time.perf_counter()
    pending = []
    for i in range(count):
        delay = started + i / per_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(one(make_request(i))))
    await asyncio.gather(*pending)
    for connection in idle:
        await connection.close()
    return answers
