"""When a schedule fires: its slots, from a cron expression in an IANA zone or a fixed interval.

A slot is an instant (an aware datetime in UTC) at which a schedule is due. Cron
expressions have 5 fields and are evaluated by cronsim, which follows Debian's cron
(Vixie cron) across daylight-saving changes, in the schedule's own zone:

- **Spring forward** (a local hour that does not exist): an expression whose minute
  and hour fields both name fixed values (``30 2 * * *``) fires at the first valid
  instant after the gap (03:00 where clocks jump from 02:00 to 03:00); an expression
  with ``*`` in the minute or hour field (``*/15 * * * *``) follows the real clock,
  so the times that do not exist are simply not slots.
- **Fall back** (a local hour that happens twice): a fixed-time expression fires
  once, at the first of the two instants; an expression with ``*`` in the minute or
  hour field fires at each real instant of both passes.

Intervals count whole seconds from an anchor in UTC, so they know nothing of zones.
Every function takes the moment to compute from: nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice, takewhile
from typing import Protocol
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

# The smallest step of a datetime.
_TICK = timedelta(microseconds=1)
# A cron expression has exactly these fields: minute, hour, day of month, month, day of week.
CRON_FIELDS = 5
# Slots skipped while looking for one strictly after a moment (cronsim may hand back
# the first pass of a repeated hour for a moment in its second pass).
_CRON_BEHIND_MAX = 4


class InvalidCron(ValueError):
    """A cron expression that is not 5 valid fields; the message says what is wrong."""


class Timing(Protocol):
    """When a schedule's slots fall, before any start or end is applied."""

    def iter_after(self, moment: datetime) -> Iterator[datetime]:
        """Every slot strictly after `moment` (aware), in order, in UTC."""

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The newest slot at or before `moment`, or None if there is none."""


def check_cron(expression: str) -> str:
    """The expression, normalized to single spaces, or InvalidCron."""
    fields = expression.split()
    if len(fields) != CRON_FIELDS:
        raise InvalidCron(
            f"a cron expression has {CRON_FIELDS} fields (minute hour day-of-month month "
            f"day-of-week), got {len(fields)}"
        )
    normalized = " ".join(fields)
    try:
        CronSim(normalized, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        raise InvalidCron(str(error)) from None
    return normalized


@dataclass(frozen=True)
class Cron:
    """A 5-field cron expression evaluated in an IANA time zone."""

    expression: str
    zone: ZoneInfo

    def iter_after(self, moment: datetime) -> Iterator[datetime]:
        found = CronSim(self.expression, moment.astimezone(self.zone))
        behind = 0
        try:
            for local in found:
                slot = local.astimezone(UTC)
                if slot > moment:
                    behind = 0
                    yield slot
                else:
                    # A fixed-time expression computes on local wall time: started in
                    # the second pass of a repeated hour it may hand back the first.
                    behind += 1
                    if behind > _CRON_BEHIND_MAX:
                        return
        except StopIteration:  # cronsim found nothing within its 50 years
            return

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        # cronsim counts back on wall time, which can step over a slot in the second
        # pass of a repeated hour; a few steps forward from its answer find the newest.
        # A microsecond past `moment` makes `moment` itself a candidate.
        backwards = CronSim(self.expression, (moment + _TICK).astimezone(self.zone), reverse=True)
        try:
            candidate = next(backwards).astimezone(UTC)
        except StopIteration:
            return None
        while candidate > moment:
            try:
                candidate = next(backwards).astimezone(UTC)
            except StopIteration:
                return None
        for slot in self.iter_after(candidate):
            if slot > moment:
                break
            candidate = slot
        return candidate


@dataclass(frozen=True)
class Interval:
    """Every `every_s` seconds, counted from `anchor` (aware); the anchor is a slot."""

    every_s: int
    anchor: datetime

    def first_after(self, moment: datetime) -> datetime:
        if moment < self.anchor:
            return self.anchor.astimezone(UTC)
        steps = math.floor((moment - self.anchor).total_seconds() / self.every_s) + 1
        slot = self.anchor + timedelta(seconds=steps * self.every_s)
        if slot <= moment:  # floating-point rounding at an exact slot
            slot += timedelta(seconds=self.every_s)
        return slot.astimezone(UTC)

    def iter_after(self, moment: datetime) -> Iterator[datetime]:
        slot = self.first_after(moment)
        step = timedelta(seconds=self.every_s)
        while True:
            yield slot
            slot += step

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        if moment < self.anchor:
            return None
        steps = math.floor((moment - self.anchor).total_seconds() / self.every_s)
        return (self.anchor + timedelta(seconds=steps * self.every_s)).astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """A timing between an optional first and last instant (both inclusive)."""

    timing: Timing
    start: datetime | None = None
    end: datetime | None = None

    def after(self, moment: datetime) -> datetime | None:
        """The first slot strictly after `moment`, or None when there is none."""
        return next(self.iter_after(moment), None)

    def iter_after(self, moment: datetime) -> Iterator[datetime]:
        if self.start is not None and moment < self.start:
            moment = self.start - _TICK  # the start itself may be a slot
        for slot in self.timing.iter_after(moment):
            if self.end is not None and slot > self.end:
                return
            yield slot

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        if self.end is not None:
            moment = min(moment, self.end)
        latest = self.timing.latest_at_or_before(moment)
        if latest is None or (self.start is not None and latest < self.start):
            return None
        return latest

    def between(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """Slots in (after, until], oldest first, at most `limit` of them."""
        return list(islice(takewhile(lambda slot: slot <= until, self.iter_after(after)), limit))

    def next_times(self, moment: datetime, count: int) -> list[datetime]:
        """The next `count` slots strictly after `moment` (fewer if the schedule ends)."""
        return list(islice(self.iter_after(moment), count))


@dataclass(frozen=True)
class Missed:
    """Slots that fell too long ago to fire on time: how many (up to a cap), the newest."""

    count: int
    latest: datetime | None


def missed_between(window: Window, after: datetime, until: datetime, cap: int) -> Missed:
    """The slots in (after, until]; counting stops at `cap`, the newest is exact."""
    latest = window.latest_at_or_before(until)
    if latest is None or latest <= after:
        return Missed(0, None)
    timing = window.timing
    if isinstance(timing, Interval):
        if window.start is not None:
            after = max(after, window.start - _TICK)
        first = timing.first_after(after)
        count = round((latest - first).total_seconds() / timing.every_s) + 1
        return Missed(min(max(count, 1), cap), latest)
    return Missed(len(window.between(after, latest, cap)), latest)
