"""The scheduler role: one loop that holds (or waits for) the lease and fires what is due.

Several schedulers may run; the one holding the lease (tasks/schedules/lease.py) is
active and fires, the others poll for the lease and take over when it expires. The
takeover bound is the lease's time to live plus the standby's poll interval: 6 s +
1 s by default. Every fire goes through the slot's claim (tasks/schedules/fire.py),
so a takeover, a clock step, or a paused scheduler that wakes up believing it is
still active never fires a slot twice.

Slots are due by the wall clock (``clock``); lease renewal is paced by the monotonic
one. A slot later than the grace (``misfire_grace_s``) when a scheduler gets to it
fell while no scheduler ran: it is a misfire, and the schedule's policy runs the
newest of them once (``run_once``) or none (``skip``). Slots within the grace are all
fired, late, so a takeover within the bound loses none.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasks import keys
from tasks.connections import UNREACHABLE
from tasks.errors import InvalidArgument
from tasks.schedules import fire, lease, metrics
from tasks.schedules.fire import Due, Publisher, Seen, Stale, fire_slots, pass_over
from tasks.schedules.model import RUN_ONCE, Schedule, UnknownTask
from tasks.schedules.slots import missed_between
from tasks.schedules.store import epoch, instant
from tasks.text import as_text

logger = logging.getLogger(__name__)

# The lease's time to live: how long a dead or paused active scheduler keeps it, in seconds.
DEFAULT_LEASE_S = 6.0
# How late a slot may be fired before it counts as a misfire, in seconds; above the
# takeover bound, so that a takeover loses no slot.
DEFAULT_MISFIRE_GRACE_S = 60.0
# The standby looks for an expired lease this often at most, in seconds.
STANDBY_POLL_MAX_S = 1.0
# The active scheduler looks at the due index this often at least, in seconds (a new
# or retimed schedule is picked up within it).
ACTIVE_POLL_S = 0.5
# Due schedules read per round trip.
DUE_BATCH = 500
# Slots fired in one transaction: one WATCH, one check and one EXEC for all of them.
FIRE_BATCH = 100
# Misfires counted one by one at most; beyond it only the newest is found.
MISSED_COUNT_CAP = 100_000
# Every scheduler beats this often, in seconds (the compose health check reads it).
BEAT_INTERVAL_S = 2.0
# After an error of Redis or the broker, wait this long, doubling up to the cap, in seconds.
ERROR_BACKOFF_FIRST_S = 0.5
ERROR_BACKOFF_MAX_S = 5.0


@dataclass(frozen=True)
class Settings:
    lease_s: float = DEFAULT_LEASE_S
    misfire_grace_s: float = DEFAULT_MISFIRE_GRACE_S

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 3

    @property
    def standby_poll_s(self) -> float:
        return min(STANDBY_POLL_MAX_S, self.lease_s / 3)

    @property
    def takeover_bound_s(self) -> float:
        """The longest a standby waits before it is active, once the active one is gone."""
        return self.lease_s + self.standby_poll_s

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            lease_s=float(environ.get("TASKRELAY_SCHEDULER_LEASE_S", DEFAULT_LEASE_S)),
            misfire_grace_s=float(
                environ.get("TASKRELAY_SCHEDULE_MISFIRE_GRACE_S", DEFAULT_MISFIRE_GRACE_S)
            ),
        )


def new_scheduler_id() -> str:
    """host:pid:random, so that the host's health check finds its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Scheduler:
    def __init__(
        self,
        publisher: Publisher,
        settings: Settings,
        scheduler_id: str,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publisher = publisher
        self.redis = publisher.redis
        self.settings = settings
        self.id = scheduler_id
        self.clock = clock
        self.monotonic = monotonic
        self.active = False
        self._renew_at = 0.0
        self._beat_at = 0.0

    def run(self, stopping: threading.Event) -> None:
        """Turn until `stopping` is set, riding out Redis outages; then hand the lease on."""
        logger.info(
            "scheduler %s started (lease %.1f s, takeover within %.1f s, misfire grace %.0f s)",
            self.id,
            self.settings.lease_s,
            self.settings.takeover_bound_s,
            self.settings.misfire_grace_s,
        )
        backoff_s = ERROR_BACKOFF_FIRST_S
        while not stopping.is_set():
            try:
                wait_s = self.turn()
                backoff_s = ERROR_BACKOFF_FIRST_S
            except UNREACHABLE as error:
                logger.warning("Redis or the broker is unreachable (%s); retrying", error)
                wait_s, backoff_s = backoff_s, min(backoff_s * 2, ERROR_BACKOFF_MAX_S)
            except Exception:
                logger.exception("scheduler turn failed; retrying")
                wait_s = backoff_s
            stopping.wait(wait_s)
        self.stop()

    def stop(self) -> None:
        try:
            if self.active and lease.release(self.redis, self.id):
                logger.info("scheduler %s released the lease", self.id)
            lease.forget(self.redis, self.id)
        except UNREACHABLE:
            logger.warning("could not release the lease; it expires by itself")
        self.active = False

    def turn(self) -> float:
        """Hold or seek the lease, fire what is due if active; return how long to wait."""
        now_m = self.monotonic()
        if now_m >= self._beat_at:
            lease.beat(self.redis, self.id, self.clock())
            self._beat_at = now_m + BEAT_INTERVAL_S
        if not self._hold_lease(now_m):
            return self.settings.standby_poll_s
        self.fire_due()
        return self._wait_s()

    def _hold_lease(self, now_m: float) -> bool:
        if self.active:
            if now_m < self._renew_at:
                return True
            if lease.renew(self.redis, self.id, self.settings.lease_s):
                self._renew_at = now_m + self.settings.renew_every_s
                return True
            self.active = False
            logger.warning("scheduler %s lost the lease; standing by", self.id)
            return False
        if lease.acquire(self.redis, self.id, self.settings.lease_s):
            self.active = True
            self._renew_at = now_m + self.settings.renew_every_s
            metrics.count(self.redis, metrics.TAKEOVERS)
            logger.info("scheduler %s is active", self.id)
        return self.active

    def _wait_s(self) -> float:
        until_renew = self._renew_at - self.monotonic()
        wait = min(ACTIVE_POLL_S, max(until_renew, 0.0))
        upcoming = self.redis.zrange(keys.SCHEDULES_DUE, 0, 0, withscores=True)
        if upcoming:
            wait = min(wait, max(float(upcoming[0][1]) - self.clock(), 0.0))
        return wait

    def fire_due(self) -> int:
        """Fire (or pass over) every slot due now, one slot per schedule per round; return fires.

        The slots of a round go out in transactions of FIRE_BATCH; one that is refused
        (a schedule changed, or another scheduler claimed a slot) is tried again one
        slot at a time, so that only the stale slots are dropped.
        """
        fired = 0
        while self.monotonic() < self._renew_at:
            now = instant(self.clock())
            ids = [
                as_text(i)
                for i in self.redis.zrangebyscore(
                    keys.SCHEDULES_DUE, "-inf", epoch(now), start=0, num=DUE_BATCH
                )
            ]
            if not ids:
                break
            due: list[Due] = []
            passed = 0
            for schedule, claim, updated_at in self._read(ids):
                step = self._plan(schedule, Seen(updated_at, claim, self.id), now)
                if isinstance(step, Due):
                    due.append(step)
                else:
                    passed += step
            for start in range(0, len(due), FIRE_BATCH):
                if self._renew_at == 0.0:
                    break  # the lease was lost meanwhile
                fired += self.fire_batch(due[start : start + FIRE_BATCH], now)
            if not (due or passed) or self._renew_at == 0.0:
                break
        return fired

    def _read(self, ids: list[str]) -> list[tuple[Schedule, str | None, str]]:
        with self.redis.pipeline(transaction=False) as pipe:
            for schedule_id in ids:
                pipe.hgetall(keys.schedule(schedule_id))
                pipe.get(keys.schedule_claim(schedule_id))
            replies = pipe.execute()
        found = []
        for schedule_id, raw, claim in zip(ids, replies[::2], replies[1::2], strict=True):
            if not raw:
                self.redis.zrem(keys.SCHEDULES_DUE, schedule_id)  # deleted meanwhile
                continue
            decoded = {as_text(k): as_text(v) for k, v in raw.items()}
            found.append(
                (
                    Schedule.from_hash(decoded),
                    None if claim is None else as_text(claim),
                    decoded["updated_at"],
                )
            )
        return found

    def _plan(self, schedule: Schedule, seen: Seen, now: datetime) -> Due | int:
        """The schedule's next slot to fire; else pass over its misfires or re-index it
        (returning how many schedules moved on: 1 or 0)."""
        claim = seen.claim
        cursor = instant(float(claim)) if claim is not None else schedule.created_at
        window = schedule.window()
        boundary = now - timedelta(seconds=self.settings.misfire_grace_s)
        missed = missed_between(window, cursor, boundary, MISSED_COUNT_CAP)
        on_time = window.after(max(cursor, boundary))
        if on_time is not None and on_time > now:
            on_time = None
        if not schedule.enabled or (missed.latest is None and on_time is None):
            self._reindex(schedule, seen, cursor)
            return 0
        if missed.latest is not None and schedule.misfire == RUN_ONCE:
            return Due(schedule, missed.latest, seen, missed.count - 1)
        if on_time is not None:
            return Due(schedule, on_time, seen, missed.count)
        assert missed.latest is not None
        return self._pass_over(Due(schedule, missed.latest, seen, missed.count))

    def fire_batch(self, due: list[Due], now: datetime) -> int:
        """Fire slots in one transaction, else one by one; return how many fired."""
        try:
            fire_slots(self.publisher, due, now=now)
            return len(due)
        except Stale as stale:
            if stale.reason == fire.LEASE_LOST:
                logger.info("not fired: %s", stale)
                self._renew_at = 0.0  # stop firing; the next turn finds out
                return 0
            if len(due) == 1:
                logger.info("not fired: %s", stale)
                if stale.reason == fire.CLAIMED:
                    metrics.count(self.redis, metrics.REFUSED)
                return 0
        except (UnknownTask, InvalidArgument) as error:
            if len(due) == 1:
                # The task's module is gone or its signature changed: the slot cannot run.
                [one] = due
                logger.error("schedule %s cannot fire %s: %s", one.schedule.name, one.slot, error)
                self._pass_over(Due(one.schedule, one.slot, one.seen, one.missed + 1))
                return 0
        return sum(self.fire_batch([one], now) for one in due)

    def _pass_over(self, due: Due) -> int:
        try:
            pass_over(self.redis, due.schedule, due.slot, seen=due.seen, missed=due.missed)
        except Stale as stale:
            logger.info("not passed over: %s", stale)
        return 1

    def _reindex(self, schedule: Schedule, seen: Seen, cursor: datetime) -> None:
        """Put a schedule with nothing due now back at its next slot, if it is as it was read."""
        upcoming = schedule.window().after(cursor) if schedule.enabled else None
        self.redis.eval(
            _REINDEX,
            2,
            keys.schedule(schedule.id),
            keys.SCHEDULES_DUE,
            seen.updated_at,
            schedule.id,
            "" if upcoming is None else repr(epoch(upcoming)),
        )


# KEYS: the schedule, the due index; ARGV: its updated_at as read, its id, the next
# slot (empty: none). A schedule changed or deleted meanwhile was indexed by its writer.
_REINDEX = """
if redis.call('HGET', KEYS[1], 'updated_at') ~= ARGV[1] then return 0 end
if ARGV[3] == '' then return redis.call('ZREM', KEYS[2], ARGV[2]) end
return redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
"""
