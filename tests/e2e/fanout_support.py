"""Helpers of the fan-out tests: publishing over HTTP, terminal subscribers, process memory."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support import WAIT_TIMEOUT_S

PUBLISH_PATIENCE_S = 60.0


def fresh_channel(prefix: str = "fan") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def publish(http: httpx.Client, channel: str, data: Any) -> str:
    """Publish and return the message id; a 503 (Redis restarting) is retried."""
    deadline = time.monotonic() + PUBLISH_PATIENCE_S
    while True:
        try:
            response = http.post(f"/api/channels/{channel}/messages", json={"data": data})
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 202:
            return str(response.json()["id"])
        if response is not None and response.status_code != 503:
            raise AssertionError(f"publish: {response.status_code} {response.text[:200]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"could not publish on {channel} within {PUBLISH_PATIENCE_S} s")
        time.sleep(0.2)


class TerminalSubscriber:
    """`taskrelay subscribe` as a subprocess; its output lines, read by a thread."""

    def __init__(self, args: list[str], redis_url: str, log_path: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr_path = log_path
        self._stderr = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "taskrelay.cli", "subscribe", *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"},
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_subscribed(self, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while "subscribed to" not in self.stderr_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"subscriber not ready:\n{self.stderr_path.read_text()}")
            time.sleep(0.05)

    def take(self, count: int, timeout_s: float = WAIT_TIMEOUT_S) -> list[str]:
        deadline = time.monotonic() + timeout_s
        found = []
        while len(found) < count:
            try:
                found.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(
                    f"got {len(found)} of {count} lines: {found[-3:]}\n"
                    f"{self.stderr_path.read_text()[-2000:]}"
                ) from None
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._thread.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (gunicorn's workers), from /proc."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("PPid", "0")) == pid or int(proc.name) == pid:
            total += int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    return total
