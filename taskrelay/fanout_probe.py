"""Measures fan-out: K SSE subscribers, M messages at a fixed rate, through a real web.

``python -m taskrelay.fanout_probe --subscribers 200 --messages 500 --rate 100`` starts
its own Redis, relay worker and gunicorn (worker class from TASKRELAY_WEB_WORKER_CLASS)
and prints one JSON line: deliveries/s, loss and publish-to-receive percentiles.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import click
import httpx

from taskrelay import roles
from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child

CONNECT_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0


@dataclass
class FanoutFigures:
    subscribers: int
    connected: int
    messages: int
    rate_per_s: float
    publish_per_s: float
    deliveries: int
    deliveries_per_s: float
    loss: float
    p50_ms: float
    p99_ms: float


async def _subscribe(
    http: httpx.AsyncClient, path: str, latencies: list[float], counts: list[int], ready: list[int]
) -> None:
    async with http.stream("GET", path) as response:
        ready[0] += 1
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                received = time.time()
                sent = datetime.fromisoformat(json.loads(line[6:])["published_at"]).timestamp()
                latencies.append((received - sent) * 1000)
                counts[0] += 1


async def measure(base_url: str, subscribers: int, messages: int, rate: float) -> FanoutFigures:
    channel = f"probe.{int(time.time() * 1000)}"
    latencies: list[float] = []
    counts, ready = [0], [0]
    limits = httpx.Limits(max_connections=subscribers + 10)
    timeout = httpx.Timeout(30.0, read=None)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as http:
        readers = [
            asyncio.create_task(
                _subscribe(http, f"/api/channels/{channel}/events", latencies, counts, ready)
            )
            for _ in range(subscribers)
        ]
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while ready[0] < subscribers and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.5)  # the hubs' subscriptions are in place
        started = time.monotonic()
        for n in range(messages):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            await http.post(f"/api/channels/{channel}/messages", json={"data": n})
        published = time.monotonic() - started
        expected = ready[0] * messages
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while counts[0] < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    ordered = sorted(latencies)
    return FanoutFigures(
        subscribers=subscribers,
        connected=ready[0],
        messages=messages,
        rate_per_s=rate,
        publish_per_s=round(messages / published, 1),
        deliveries=counts[0],
        deliveries_per_s=round(counts[0] / elapsed, 1),
        loss=round(1 - counts[0] / (subscribers * messages), 4),
        p50_ms=round(statistics.median(ordered), 1) if ordered else float("nan"),
        p99_ms=round(ordered[int(len(ordered) * 0.99) - 1], 1) if ordered else float("nan"),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@click.command()
@click.option("--subscribers", default=200, show_default=True)
@click.option("--messages", default=500, show_default=True)
@click.option("--rate", default=100.0, show_default=True, help="Messages per second.")
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the logs of Redis, the relay worker and the web here.",
)
def main(subscribers: int, messages: int, rate: float, log_dir: Path | None) -> None:
    # A SIGTERM (from `timeout`, say) unwinds like Ctrl-C, so the children are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with tempfile.TemporaryDirectory() as scratch:
        var = log_dir or Path(scratch)
        redis_server = EmbeddedRedis(port=_free_port(), data_dir=var / "redis")
        redis_server.start()
        # Every subscriber comes from this one address: no per-client share of streams.
        env = {"REDIS_URL": redis_server.url, "TASKRELAY_SSE_MAX_STREAMS_PER_CLIENT": "100000"}
        port = _free_port()
        relay = Child("relay", roles.relay_worker_argv(), var / "relay.log", env)
        web = Child("web", roles.web_argv(f"127.0.0.1:{port}"), var / "web.log", env)
        try:
            relay.start()
            web.start()
            base_url = f"http://127.0.0.1:{port}"
            _wait_healthy(base_url)
            figures = asyncio.run(measure(base_url, subscribers, messages, rate))
            click.echo(json.dumps(asdict(figures)))
        finally:
            for child in (web, relay):
                child.terminate()
                child.wait_stopped()
            redis_server.stop()


def _wait_healthy(base_url: str) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise click.ClickException("the web did not answer /healthz")


if __name__ == "__main__":
    main()
