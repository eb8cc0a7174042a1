"""Follow schedules: Go durations, cron expressions and start-up behaviour."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from falcoctl_py.errors import UsageError
from falcoctl_py.follow.schedule import (
    CronSchedule,
    Schedule,
    StartupBehavior,
    format_duration,
    parse_duration,
)

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("168h", 604800), ("6h", 21600), ("1h30m", 5400), ("2s", 2), ("500ms", 0.5), ("1.5s", 1.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "0", "6", "6d", "h", "-1h", "1h x"])
def test_bad_duration_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(21600) == "6h"
    assert format_duration(5400) == "1h30m"
    assert format_duration(0.5) == "0.5s"


def test_cron_every_six_hours() -> None:
    cron = CronSchedule.parse("0 */6 * * *")
    now = dt.datetime(2026, 11, 26, 7, 15, tzinfo=UTC)
    assert cron.next_after(now) == dt.datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_cron_weekday_names_and_sunday_as_seven() -> None:
    cron = CronSchedule.parse("30 2 * * SUN")
    assert CronSchedule.parse("30 2 * * 7").weekdays == cron.weekdays == frozenset({0})
    # 2026-11-26 is a Thursday; the next Sunday is the 29th.
    nxt = cron.next_after(dt.datetime(2026, 11, 26, 0, 0, tzinfo=UTC))
    assert nxt == dt.datetime(2026, 11, 29, 2, 30, tzinfo=UTC)


def test_cron_day_of_month_or_weekday() -> None:
    cron = CronSchedule.parse("0 0 1 * MON")  # the 1st, or any Monday
    nxt = cron.next_after(dt.datetime(2026, 11, 26, 0, 0, tzinfo=UTC))
    assert nxt == dt.datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def test_cron_crosses_year_and_february() -> None:
    cron = CronSchedule.parse("@yearly")
    assert cron.next_after(dt.datetime(2026, 11, 26, tzinfo=UTC)) == dt.datetime(
        2027, 1, 1, tzinfo=UTC
    )
    leap = CronSchedule.parse("0 0 29 2 *")
    assert leap.next_after(dt.datetime(2026, 3, 1, tzinfo=UTC)) == dt.datetime(
        2028, 2, 29, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "spec", ["* * * *", "61 * * * *", "* * * 13 *", "*/0 * * * *", "x * * * *"]
)
def test_bad_cron_is_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError):
        CronSchedule.parse(spec)


def test_every_and_cron_are_exclusive() -> None:
    with pytest.raises(UsageError, match="cannot be used together"):
        Schedule.from_options(every="1h", cron="* * * * *")


def test_default_every_is_six_hours() -> None:
    assert Schedule.from_options(every=None, cron=None).every == 6 * 3600


def test_at_every_descriptor() -> None:
    assert Schedule.from_options(every=None, cron="@every 2s").every == 2


def test_startup_behaviours() -> None:
    sched = Schedule.from_options(every="10s", cron=None)
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert sched.first_delay(StartupBehavior.immediate, now) == 0
    assert sched.first_delay(StartupBehavior.skip, now) == 10
    delays = {sched.first_delay(StartupBehavior.jitter, now, random.Random(i)) for i in range(20)}
    assert all(0 <= d <= 10 for d in delays) and len(delays) > 1
