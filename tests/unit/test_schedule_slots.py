"""Slot arithmetic from a given moment (no clock): cron in IANA zones across DST, intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tasks.schedules.slots import (
    Cron,
    Interval,
    InvalidCron,
    Window,
    check_cron,
    missed_between,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(zone: ZoneInfo, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=zone, fold=fold)  # type: ignore[misc]


def next_local(expression: str, zone: ZoneInfo, moment: datetime, count: int) -> list[str]:
    window = Window(Cron(expression, zone))
    return [slot.astimezone(zone).isoformat() for slot in window.next_times(moment, count)]


def test_a_fixed_time_in_the_spring_forward_gap_fires_once_right_after_the_gap() -> None:
    # Berlin, 30 March 2025: 02:00 jumps to 03:00, so 02:30 does not exist.
    slots = next_local("30 2 * * *", BERLIN, local(BERLIN, 2025, 3, 29, 12), 3)
    assert slots == [
        "2025-03-30T03:00:00+02:00",
        "2025-03-31T02:30:00+02:00",
        "2025-04-01T02:30:00+02:00",
    ]


def test_a_wildcard_hour_skips_the_times_the_spring_forward_gap_removes() -> None:
    slots = next_local("*/30 * * * *", BERLIN, local(BERLIN, 2025, 3, 30, 1, 10), 3)
    assert slots == [
        "2025-03-30T01:30:00+01:00",
        "2025-03-30T03:00:00+02:00",
        "2025-03-30T03:30:00+02:00",
    ]


def test_a_fixed_time_in_the_repeated_fall_back_hour_fires_once() -> None:
    # Berlin, 26 October 2025: 03:00 goes back to 02:00, so 02:30 happens twice.
    slots = next_local("30 2 * * *", BERLIN, local(BERLIN, 2025, 10, 25, 12), 3)
    assert slots == [
        "2025-10-26T02:30:00+02:00",
        "2025-10-27T02:30:00+01:00",
        "2025-10-28T02:30:00+01:00",
    ]


def test_a_wildcard_hour_fires_in_both_passes_of_the_repeated_hour() -> None:
    slots = next_local("*/30 * * * *", BERLIN, local(BERLIN, 2025, 10, 26, 1, 50), 5)
    assert slots == [
        "2025-10-26T02:00:00+02:00",
        "2025-10-26T02:30:00+02:00",
        "2025-10-26T02:00:00+01:00",
        "2025-10-26T02:30:00+01:00",
        "2025-10-26T03:00:00+01:00",
    ]


def test_a_moment_in_the_second_pass_never_gets_a_slot_from_the_first() -> None:
    second_pass = local(BERLIN, 2025, 10, 26, 2, 15, fold=1)
    window = Window(Cron("30 2 * * *", BERLIN))
    slot = window.after(second_pass)
    assert slot is not None and slot > second_pass
    assert slot.astimezone(BERLIN).isoformat() == "2025-10-27T02:30:00+01:00"


def test_new_york_skips_and_repeats_its_own_hours_in_its_own_months() -> None:
    # 9 March 2025: 02:00 -> 03:00; 2 November 2025: 02:00 -> 01:00.
    spring = next_local("15 2 * * *", NEW_YORK, local(NEW_YORK, 2025, 3, 8, 12), 2)
    assert spring == ["2025-03-09T03:00:00-04:00", "2025-03-10T02:15:00-04:00"]
    autumn = next_local("15 1 * * *", NEW_YORK, local(NEW_YORK, 2025, 11, 1, 12), 2)
    assert autumn == ["2025-11-02T01:15:00-04:00", "2025-11-03T01:15:00-05:00"]


def test_utc_slots_are_the_same_instants_whatever_zone_the_moment_is_written_in() -> None:
    moment = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    in_tokyo = moment.astimezone(ZoneInfo("Asia/Tokyo"))
    utc = Window(Cron("0 * * * *", ZoneInfo("UTC")))
    assert utc.next_times(moment, 2) == utc.next_times(in_tokyo, 2)
    assert utc.next_times(moment, 1) == [datetime(2025, 6, 1, 13, 0, tzinfo=UTC)]


def test_the_thirty_first_fires_only_in_months_that_have_one() -> None:
    slots = next_local("0 0 31 * *", BERLIN, local(BERLIN, 2025, 1, 1), 4)
    assert [s[:10] for s in slots] == ["2025-01-31", "2025-03-31", "2025-05-31", "2025-07-31"]


def test_l_is_the_last_day_of_each_month_leap_february_included() -> None:
    slots = next_local("0 12 L * *", BERLIN, local(BERLIN, 2028, 1, 15), 3)
    assert [s[:10] for s in slots] == ["2028-01-31", "2028-02-29", "2028-03-31"]


def test_the_twenty_ninth_of_february_comes_every_leap_year() -> None:
    slots = next_local("0 0 29 2 *", BERLIN, local(BERLIN, 2025, 1, 1), 3)
    assert [s[:10] for s in slots] == ["2028-02-29", "2032-02-29", "2036-02-29"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("* * * * *", ["00:01", "00:02", "00:03"]),  # every minute
        ("5 * * * *", ["00:05", "01:05", "02:05"]),  # a value
        ("0,20,40 * * * *", ["00:20", "00:40", "01:00"]),  # a list
        ("10-12 * * * *", ["00:10", "00:11", "00:12"]),  # a range
        ("*/25 * * * *", ["00:25", "00:50", "01:00"]),  # a step over the whole field
        ("10-40/15 * * * *", ["00:10", "00:25", "00:40"]),  # a step over a range
        ("0 */8 * * *", ["08:00", "16:00", "00:00"]),  # a step in the hour field
    ],
)
def test_every_field_form_of_the_minute_and_hour_fields(
    expression: str, expected: list[str]
) -> None:
    start = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)  # a Monday
    slots = Window(Cron(expression, ZoneInfo("UTC"))).next_times(start, 3)
    assert [s.strftime("%H:%M") for s in slots] == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 * * MON", ["2025-01-13", "2025-01-20"]),  # a weekday by name
        ("0 0 * * 0", ["2025-01-12", "2025-01-19"]),  # Sunday as 0
        ("0 0 * * 7", ["2025-01-12", "2025-01-19"]),  # Sunday as 7
        ("0 0 * * MON-WED", ["2025-01-07", "2025-01-08"]),  # a range of weekdays
        ("0 0 * * FRI#2", ["2025-01-10", "2025-02-14"]),  # the second Friday
        ("0 0 * * 5L", ["2025-01-31", "2025-02-28"]),  # the last Friday
        ("0 0 1 * *", ["2025-02-01", "2025-03-01"]),  # a day of the month
        ("0 0 1 JAN,JUL *", ["2025-07-01", "2026-01-01"]),  # months by name
        ("0 0 1-2 */6 *", ["2025-07-01", "2025-07-02"]),  # a step in the month field
        ("0 0 13 * FRI", ["2025-01-10", "2025-01-13"]),  # day and weekday: either matches
    ],
)
def test_every_field_form_of_the_day_month_and_weekday_fields(
    expression: str, expected: list[str]
) -> None:
    start = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)  # a Monday
    slots = Window(Cron(expression, ZoneInfo("UTC"))).next_times(start, 2)
    assert [s.date().isoformat() for s in slots] == expected


@pytest.mark.parametrize(
    "expression",
    ["* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "0 0 30 2 *", "x * * * *", ""],
)
def test_an_expression_that_is_not_five_valid_fields_is_refused(expression: str) -> None:
    with pytest.raises(InvalidCron):
        check_cron(expression)


def test_a_valid_expression_is_kept_with_single_spaces() -> None:
    assert check_cron("  */5   *  * *   MON-FRI ") == "*/5 * * * MON-FRI"


def test_an_interval_counts_from_its_anchor_and_never_returns_the_moment_itself() -> None:
    anchor = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
    every = Interval(10, anchor)
    assert every.first_after(anchor - timedelta(hours=1)) == anchor
    assert every.first_after(anchor) == anchor + timedelta(seconds=10)
    assert every.first_after(anchor + timedelta(seconds=25)) == anchor + timedelta(seconds=30)
    assert every.latest_at_or_before(anchor + timedelta(seconds=30)) == anchor + timedelta(
        seconds=30
    )
    assert every.latest_at_or_before(anchor - timedelta(seconds=1)) is None


def test_an_interval_ignores_daylight_saving_it_counts_real_seconds() -> None:
    anchor = local(BERLIN, 2025, 3, 30, 1, 0).astimezone(UTC)
    slots = Window(Interval(3600, anchor)).next_times(anchor, 2)
    assert [s.astimezone(BERLIN).strftime("%H:%M") for s in slots] == ["03:00", "04:00"]


def test_a_window_fires_from_its_start_to_its_end_inclusive() -> None:
    anchor = datetime(2025, 1, 1, tzinfo=UTC)
    start, end = anchor + timedelta(seconds=20), anchor + timedelta(seconds=40)
    window = Window(Interval(10, anchor), start, end)
    assert window.next_times(anchor, 10) == [start, start + timedelta(seconds=10), end]
    assert window.after(end) is None
    assert window.latest_at_or_before(anchor + timedelta(hours=1)) == end
    assert window.latest_at_or_before(anchor + timedelta(seconds=15)) is None


def test_a_cron_with_an_end_stops_and_one_with_a_start_waits() -> None:
    zone = ZoneInfo("UTC")
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    ended = Window(Cron("0 * * * *", zone), end=moment + timedelta(hours=2))
    assert len(ended.next_times(moment, 10)) == 2
    later = Window(Cron("0 * * * *", zone), start=moment + timedelta(days=2))
    assert later.after(moment) == moment + timedelta(days=2)


def test_missed_slots_are_counted_and_the_newest_found_for_intervals() -> None:
    anchor = datetime(2025, 1, 1, tzinfo=UTC)
    window = Window(Interval(1, anchor))
    missed = missed_between(window, anchor, anchor + timedelta(seconds=100.5), cap=1000)
    assert missed.count == 100
    assert missed.latest == anchor + timedelta(seconds=100)
    assert missed_between(window, anchor, anchor + timedelta(seconds=0.5), cap=10).count == 0


def test_missed_cron_slots_stop_counting_at_the_cap_but_the_newest_is_exact() -> None:
    zone = ZoneInfo("UTC")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    window = Window(Cron("* * * * *", zone))
    missed = missed_between(window, start, start + timedelta(days=3), cap=50)
    assert missed.count == 50
    assert missed.latest == start + timedelta(days=3)


def test_the_newest_missed_slot_in_a_repeated_hour_is_the_second_pass_one() -> None:
    # 02:45 of the second pass: the newest "*/30" slot at or before it is 02:30 (+01:00).
    until = local(BERLIN, 2025, 10, 26, 2, 45, fold=1)
    window = Window(Cron("*/30 * * * *", BERLIN))
    three_hours_before = until.astimezone(UTC) - timedelta(hours=3)  # real hours, not wall
    missed = missed_between(window, three_hours_before, until, cap=100)
    assert missed.latest is not None
    assert missed.latest.astimezone(BERLIN).isoformat() == "2025-10-26T02:30:00+01:00"
    assert missed.count == 6  # 01:00 .. 02:30 (+02:00), then 02:00 and 02:30 (+01:00)
