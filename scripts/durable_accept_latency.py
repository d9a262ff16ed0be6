"""Measure what durable accept (TASKRELAY_SUBMIT_REPLICAS) adds to a POST's latency.

    .venv/bin/python scripts/durable_accept_latency.py            # 500 POSTs of each kind
    .venv/bin/python scripts/durable_accept_latency.py --requests 2000

Starts a primary Redis (append-only, fsync every second, as ``taskrelay up``) and one
replica on loopback, then two real gunicorns, with SUBMIT_REPLICAS 0 and 1, and times
POST /api/tasks and POST /api/channels/<name>/messages sent to each in turn, one at a
time, over one keep-alive connection per gunicorn. No worker runs: only the accept
is timed. Prints one line per setting and endpoint: mean, p50, p90, p99 in ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from taskrelay import roles
from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child
from taskrelay.waiting import free_port, wait_until

WARMUP_REQUESTS = 50
# The settings compared, each served by its own gunicorn at the same time.
SETTINGS = (0, 1)
START_TIMEOUT_S = 60.0


def start_pair(root: Path) -> tuple[EmbeddedRedis, EmbeddedRedis]:
    primary = EmbeddedRedis(port=free_port(), data_dir=root / "primary")
    primary.start()
    replica = EmbeddedRedis(port=free_port(), data_dir=root / "replica")
    replica.start()
    client = redis.Redis(port=replica.port, decode_responses=True)
    client.replicaof("127.0.0.1", str(primary.port))
    wait_until(
        lambda: client.info("replication").get("master_link_status") == "up",
        timeout_s=START_TIMEOUT_S,
        what="the replica to sync",
    )
    client.close()
    return primary, replica


def start_web(primary: EmbeddedRedis, replicas: int, root: Path) -> tuple[Child, str]:
    port = free_port()
    child = Child(
        f"web-{port}",
        roles.web_argv(f"127.0.0.1:{port}"),
        root / f"web-{port}.log",
        {"REDIS_URL": primary.url, "TASKRELAY_SUBMIT_REPLICAS": str(replicas)},
    )
    child.start()
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout_s=START_TIMEOUT_S, what="gunicorn to answer")
    return child, base_url


Send = Callable[[httpx.Client, int], httpx.Response]

ENDPOINTS: dict[str, Send] = {
    "POST /api/tasks": lambda http, n: http.post(
        "/api/tasks", json={"task": "consume", "args": [n]}
    ),
    "POST /api/channels/<c>/messages": lambda http, n: http.post(
        "/api/channels/bench/messages", json={"data": n}
    ),
}


def interleaved(send: Send, clients: list[httpx.Client], requests: int) -> list[list[float]]:
    """Per client, each request's time: one request to each in turn, so that what else
    the machine does at a moment weighs on every setting alike."""
    for number in range(WARMUP_REQUESTS):
        for http in clients:
            send(http, number)
    took_ms: list[list[float]] = [[] for _ in clients]
    order = list(enumerate(clients))
    for number in range(requests):
        # Each goes first as often as the other.
        for index, http in order if number % 2 == 0 else reversed(order):
            started = time.perf_counter()
            reply = send(http, number)
            took_ms[index].append((time.perf_counter() - started) * 1000)
            if reply.status_code != 202:
                raise SystemExit(f"{reply.status_code}: {reply.text}")
    return took_ms


def summary(took_ms: list[float]) -> str:
    cuts = statistics.quantiles(took_ms, n=100)
    return (
        f"mean {statistics.fmean(took_ms):.2f}  p50 {cuts[49]:.2f}  "
        f"p90 {cuts[89]:.2f}  p99 {cuts[98]:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="durable-accept-") as scratch:
        root = Path(scratch)
        primary, replica = start_pair(root)
        webs: list[Child] = []
        try:
            urls = []
            for replicas in SETTINGS:
                web, base_url = start_web(primary, replicas, root)
                webs.append(web)
                urls.append(base_url)
            clients = [httpx.Client(base_url=url, timeout=10) for url in urls]
            try:
                for endpoint, send in ENDPOINTS.items():
                    for replicas, took_ms in zip(
                        SETTINGS, interleaved(send, clients, options.requests), strict=True
                    ):
                        print(f"SUBMIT_REPLICAS={replicas}  {endpoint:32} {summary(took_ms)}")
            finally:
                for http in clients:
                    http.close()
        finally:
            for web in webs:
                web.terminate()
                web.wait_stopped()
            replica.stop()
            primary.stop()


if __name__ == "__main__":
    main()
