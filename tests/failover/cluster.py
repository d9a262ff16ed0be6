"""A Sentinel group of real servers on 127.0.0.1: one primary, one replica, three sentinels.

Any redis-server or valkey-server binary runs it (``redis-server --sentinel`` and
``valkey-server --sentinel`` take the same configuration). The sentinels decide
quickly: a primary that has not answered for DOWN_AFTER_MS is down, and two of
three agree to promote the replica.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from taskrelay.embedded_redis import server_arguments
from tasks import redis_urls
from tests.support import free_port, wait_until

MASTER_NAME = "taskrelay"
# Short, for fast tests, but not 1 s: on a loaded 2-core machine a sentinel once went
# 1 s without a reply from the primary it had just switched to, marked it down, and
# failed over again to the old primary, which had just restarted with none of the
# writes the new one took (production's compose file waits 5 s).
DOWN_AFTER_MS = 3_000
# Also the pause Sentinel keeps between two failovers of the same primary (twice
# this), and the bound on a replica's reconfiguration.
FAILOVER_TIMEOUT_MS = 3_000
QUORUM = 2
START_TIMEOUT_S = 15.0
# A sentinel learns the primary's replicas from the primary's INFO, which it asks for
# every 10 s: an answer taken just before the replica connected costs one more period.
SETTLE_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 0.5


@dataclass
class Server:
    """One data server: started as primary or as replica of a port."""

    binary: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, replica_of: int | None = None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = server_arguments(self.port, self.data_dir)
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.process = _spawn([self.binary, *args])
        wait_until(lambda: _answers(self.port), timeout_s=START_TIMEOUT_S, what=f"{self.port} up")

    def kill(self) -> None:
        """SIGKILL: what was not yet replicated is lost with it."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
            self.process = None

    def client(self) -> redis.Redis:
        return _probe(self.port)


@dataclass
class SentinelGroup:
    binary: str
    root: Path
    primary: Server = field(init=False)
    replica: Server = field(init=False)
    sentinel_ports: list[int] = field(default_factory=list)
    sentinels: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.primary = Server(self.binary, free_port(), self.root / "a")
        self.replica = Server(self.binary, free_port(), self.root / "b")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return redis_urls.sentinel_url(hosts, MASTER_NAME)

    def start(self) -> None:
        """Start the servers and the sentinels; stop whatever started if the group does not."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.primary.start()
        self.replica.start(replica_of=self.primary.port)
        for index in range(3):
            port = free_port()
            directory = self.root / f"sentinel-{index}"
            directory.mkdir(parents=True, exist_ok=True)
            config = directory / "sentinel.conf"
            config.write_text(
                "\n".join(
                    [
                        f"port {port}",
                        "bind 127.0.0.1",
                        f"dir {directory}",
                        f"logfile {directory / 'sentinel.log'}",
                        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary.port} {QUORUM}",
                        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                        f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
                        f"sentinel parallel-syncs {MASTER_NAME} 1",
                        "",
                    ]
                )
            )
            self.sentinels.append(_spawn([self.binary, str(config), "--sentinel"]))
            self.sentinel_ports.append(port)
        for port in self.sentinel_ports:
            wait_until(lambda p=port: _answers(p), timeout_s=START_TIMEOUT_S, what="sentinel up")
        # Every sentinel knows the replica and the other sentinels before anything fails.
        wait_until(self._settled, timeout_s=SETTLE_TIMEOUT_S, what="the sentinels to settle")

    def _settled(self) -> bool:
        for port in self.sentinel_ports:
            with contextlib.closing(_probe(port)) as sentinel:
                try:
                    state = sentinel.sentinel_master(MASTER_NAME)
                except redis.RedisError:
                    return False
            if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                return False
        return self.replica_in_sync()

    def replica_in_sync(self) -> bool:
        with contextlib.closing(self.replica.client()) as replica:
            try:
                info = replica.info("replication")
            except redis.RedisError:
                return False
        return info.get("master_link_status") == "up"

    def replica_ready(self) -> bool:
        """In sync, and known to every sentinel as a replica it may promote."""
        if not self.replica_in_sync():
            return False
        for port in self.sentinel_ports:
            with contextlib.closing(_probe(port)) as sentinel:
                try:
                    replicas = sentinel.sentinel_slaves(MASTER_NAME)
                except redis.RedisError:
                    return False
            ready = [
                r
                for r in replicas
                if int(r["port"]) == self.replica.port
                and r.get("master-link-status") == "ok"
                and not ({"s_down", "o_down", "disconnected"} & set(r["flags"].split(",")))
            ]
            if not ready:
                return False
        return True

    def primary_address(self) -> tuple[str, int] | None:
        """Where the sentinels say the primary is now (the first that answers)."""
        for port in self.sentinel_ports:
            with contextlib.closing(_probe(port)) as sentinel:
                try:
                    found = sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)
                except redis.RedisError:
                    continue
            if found:
                return str(found[0]), int(found[1])
        return None

    def swap_roles(self) -> None:
        """After a promotion, the replica is the primary and the old primary the replica."""
        self.primary, self.replica = self.replica, self.primary

    def failover(self) -> None:
        """A planned switch: SENTINEL FAILOVER, asked of one sentinel."""
        with contextlib.closing(_probe(self.sentinel_ports[0])) as sentinel:
            sentinel.sentinel_failover(MASTER_NAME)

    def stop(self) -> None:
        for process in self.sentinels:
            process.terminate()
        for process in self.sentinels:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        self.sentinels.clear()
        self.primary.stop()
        self.replica.stop()


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
    )


def _probe(port: int) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        socket_timeout=PROBE_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def _answers(port: int) -> bool:
    with contextlib.closing(_probe(port)) as client:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False


def wait_promoted(group: SentinelGroup, port: int, timeout_s: float) -> float:
    """Seconds until the sentinels name the server on ``port`` as the primary."""
    started = time.monotonic()
    wait_until(
        lambda: group.primary_address() == ("127.0.0.1", port),
        timeout_s=timeout_s,
        interval_s=0.05,
        what=f"the sentinels to promote {port}",
    )
    return time.monotonic() - started
