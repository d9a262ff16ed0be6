"""`taskrelay up` on free ports with its own Redis and a throw-away var directory.

For the scripts that need a whole system for a while (the dashboard's screenshot, the
fault drill): started as a person starts it, stopped as a person stops it (Ctrl-C's
SIGINT), and its log kept beside its data until the directory goes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from taskrelay.waiting import free_port, wait_until

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 120.0


@dataclass
class ThrowawaySystem:
    web_port: int
    process: subprocess.Popen[bytes]
    # The processes it ran when it was asked to stop, for a look at what outlived it.
    processes_at_stop: list[psutil.Process] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def wait_ready(self) -> None:
        """Until ``/readyz`` answers 200; SystemExit if the system exits or takes too long."""
        try:
            wait_until(
                self._ready,
                timeout_s=READY_TIMEOUT_S,
                what="the system to be ready",
                interval_s=0.2,
            )
        except TimeoutError as error:
            raise SystemExit(str(error)) from None

    def left_behind(self) -> list[int]:
        """The processes it ran that are still alive after it stopped."""
        return [process.pid for process in self.processes_at_stop if _alive(process)]

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise SystemExit(f"taskrelay up exited with {self.process.returncode}")
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@contextlib.contextmanager
def running(prefix: str) -> Iterator[ThrowawaySystem]:
    """A ready system, stopped when the block ends."""
    web_port = free_port()
    with tempfile.TemporaryDirectory(prefix=prefix) as var_dir:
        env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
        argv = [sys.executable, "-m", "taskrelay.cli", "up"]
        argv += ["--web-port", str(web_port), "--flower-port", str(free_port())]
        argv += ["--redis-port", str(free_port()), "--var-dir", var_dir]
        with (Path(var_dir) / "up.log").open("wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        system = ThrowawaySystem(web_port, process)
        try:
            system.wait_ready()
            yield system
        finally:
            system.processes_at_stop = _descendants(process.pid)
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    # Ctrl-C is how a person stops `taskrelay up`; it stops every role cleanly.
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return children


def _alive(process: psutil.Process) -> bool:
    try:
        alive: bool = process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    return alive
