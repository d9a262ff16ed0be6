"""What a failed failover run leaves in test-artifacts/, for a failure seen only in CI.

CI keeps test-artifacts/ and nothing of the tests' temporary directories, where the
servers, the sentinels, the workers and the webs write their logs. When a failover
test fails, its system fixture calls ``keep`` before it stops anything: the state
of every server and sentinel as they are at that moment (``state.txt``), then a
copy of every log.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis

from taskrelay.processes import Child
from tasks import keys
from tasks.queues import RELAY_QUEUE
from tests.failover.cluster import MASTER_NAME, SentinelGroup, Server, _probe

# The INFO replication fields that say who follows whom, and how far.
REPLICATION_FIELDS = (
    "role",
    "master_host",
    "master_port",
    "master_link_status",
    "master_sync_in_progress",
    "connected_slaves",
    "master_replid",
    "master_replid2",
    "master_repl_offset",
    "second_repl_offset",
)
SENTINEL_FIELDS = ("ip", "port", "flags", "config-epoch", "num-slaves", "failover-state")
# kombu's hash of delivered, not yet acknowledged messages (every queue's).
UNACKED_KEY = "unacked"
# Celery's worker answers SIGUSR1 by writing every thread's stack to its log (its
# "cry" handler), ending each with this heading; a worker stuck where no error is
# logged shows where it is.
STACK_DUMP_MARK = b"LOCAL VARIABLES"
STACK_DUMP_WAIT_S = 3.0


def dump_stacks(workers: Iterable[Child]) -> None:
    """Have each live worker write its threads' stacks to its log; wait for them briefly."""
    asked = []
    for child in workers:
        if child.process is None or child.process.poll() is not None:
            continue
        with contextlib.suppress(OSError):
            asked.append((child, child.log_path.stat().st_size))
            child.process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + STACK_DUMP_WAIT_S
    for child, size in asked:
        while time.monotonic() < deadline and not _logged_since(child, size, STACK_DUMP_MARK):
            time.sleep(0.1)


def _logged_since(child: Child, offset: int, mark: bytes) -> bool:
    with contextlib.suppress(OSError), child.log_path.open("rb") as log:
        log.seek(offset)
        return mark in log.read()
    return False


def keep(
    destination: Path,
    group: SentinelGroup,
    channel: str,
    logs: Iterable[Path],
) -> None:
    """Write the servers' and sentinels' state, then copy the logs, into ``destination``.

    Never raises: a failing test's own error is what the report must show.
    """
    with contextlib.suppress(OSError):
        destination.mkdir(parents=True, exist_ok=True)
        (destination / "state.txt").write_text("\n".join(_state(group, channel)) + "\n")
        for path in [*_server_files(group.root), *logs]:
            _copy(path, destination / _name(group.root, path))


def _state(group: SentinelGroup, channel: str) -> list[str]:
    lines = []
    for label, server in (("primary", group.primary), ("replica", group.replica)):
        lines.append(f"{label} (as the test last saw it) {server.data_dir.name}:{server.port}")
        lines += [f"  {line}" for line in _server_state(server, channel)]
    for port in group.sentinel_ports:
        lines.append(f"sentinel {port}")
        lines += [f"  {line}" for line in _sentinel_state(port)]
    return lines


def _server_state(server: Server, channel: str) -> list[str]:
    with contextlib.closing(server.client()) as client:
        try:
            info = client.info("replication")
            found = [f"{name}: {info.get(name)}" for name in REPLICATION_FIELDS if name in info]
            found.append(f"channel {channel}: {_stream_summary(client, channel)}")
            found.append(f"relay: {_relay_summary(client)}")
            return found
        except redis.RedisError as error:
            return [f"unreachable: {error!r}"]


def _stream_summary(client: redis.Redis, channel: str) -> str:
    key = keys.channel_stream(channel)
    length = client.xlen(key)
    first = client.xrange(key, count=1)
    last = client.xrevrange(key, count=1)
    ends = f"{first[0][0]}..{last[0][0]}" if first and last else "empty"
    held = client.get(keys.channel_bytes(channel))
    return f"{length} entries, {ends}, bytes key {held}"


def _relay_summary(client: redis.Redis) -> str:
    """Where accepted messages wait: a dark relay leaves them queued, a relay that
    appended elsewhere leaves them pending with an empty queue."""
    queued = sum(
        client.llen(name) for name in client.scan_iter(match=f"{RELAY_QUEUE}*", _type="list")
    )
    return (
        f"{queued} queued, {client.hlen(UNACKED_KEY)} unacked (all queues), "
        f"{client.hlen(keys.RELAY_PENDING)} pending records, dbsize {client.dbsize()}"
    )


def _sentinel_state(port: int) -> list[str]:
    with contextlib.closing(_probe(port)) as sentinel:
        try:
            state: dict[str, Any] = sentinel.sentinel_master(MASTER_NAME)
            replicas = sentinel.sentinel_slaves(MASTER_NAME)
        except redis.RedisError as error:
            return [f"unreachable: {error!r}"]
    found = [f"master {' '.join(f'{k}={state.get(k)}' for k in SENTINEL_FIELDS)}"]
    found += [
        f"replica {r.get('ip')}:{r.get('port')} flags={r.get('flags')} "
        f"link={r.get('master-link-status')} offset={r.get('slave-repl-offset')}"
        for r in replicas
    ]
    return found


def _server_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".log", ".conf"))


def _name(root: Path, path: Path) -> str:
    """servers/a/redis.log becomes a-redis.log; a worker's log keeps its name."""
    with contextlib.suppress(ValueError):
        return "-".join(path.relative_to(root).parts)
    return path.name


def _copy(source: Path, target: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.copyfile(source, target)
