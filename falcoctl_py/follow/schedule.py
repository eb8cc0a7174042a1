"""When ``artifact follow`` checks: Go durations (``--every``), cron (``--cron``), start-up.

Cron grammar (robfig's ``ParseStandard``): five fields
``minute hour day-of-month month day-of-week``, each ``*`` or a list of ``a``, ``a-b``, ``*/n``
or ``a-b/n``; months and weekdays also by their three-letter names; day-of-week 0 and 7 are
Sunday. When both day fields are restricted, a day matches if either does (Vixie cron).
Descriptors: ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``,
``@hourly`` and ``@every <duration>``. Times are UTC.
"""

from __future__ import annotations

import datetime as dt
import enum
import random
from dataclasses import dataclass

from falcoctl_py.errors import ConfigError, UsageError


def parse_duration(text: str) -> float:
    """A flag's Go duration (``--every``, ``--timeout``) in seconds: :func:`config.parse_duration`
    (the one parser), its errors as usage errors."""
    from falcoctl_py.config import parse_duration as parse

    try:
        return parse(text)
    except ConfigError as err:
        raise UsageError(err.message, hint=err.hint) from None


def format_duration(seconds: float) -> str:
    """Seconds as a short Go-style duration (``6h0m0s`` becomes ``6h``)."""
    whole = int(seconds)
    if whole != seconds or whole == 0:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _parse_field(
    text: str, low: int, high: int, names: dict[str, int], spec: str
) -> frozenset[int]:
    values: set[int] = set()

    def number(token: str) -> int:
        token_up = token.upper()
        if token_up in names:
            return names[token_up]
        if not token.isdigit():
            raise UsageError(f"invalid cron expression {spec!r}: {token!r} is not a number")
        return int(token)

    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise UsageError(f"invalid cron expression {spec!r}: bad step {step_text!r}")
            step = int(step_text)
        if part == "*":
            first, last = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            first, last = number(a), number(b)
        else:
            first = number(part)
            last = high if step > 1 else first
        if not (low <= first <= high and low <= last <= high) or first > last:
            raise UsageError(
                f"invalid cron expression {spec!r}: {part!r} is outside {low}-{high}",
                hint="fields are: minute hour day-of-month month day-of-week",
            )
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed five-field cron expression."""

    spec: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_star: bool
    weekdays_star: bool

    @classmethod
    def parse(cls, spec: str) -> CronSchedule:
        text = _DESCRIPTORS.get(spec.strip().lower(), spec.strip())
        fields = text.split()
        if len(fields) != 5:
            raise UsageError(
                f"invalid cron expression {spec!r}: expected 5 fields, got {len(fields)}",
                hint='use "minute hour day-of-month month day-of-week", e.g. "0 */6 * * *"',
            )
        weekdays = _parse_field(fields[4], 0, 7, _DAYS, spec)
        if 7 in weekdays:
            weekdays = (weekdays - {7}) | {0}
        return cls(
            spec=spec,
            minutes=_parse_field(fields[0], 0, 59, {}, spec),
            hours=_parse_field(fields[1], 0, 23, {}, spec),
            days=_parse_field(fields[2], 1, 31, {}, spec),
            months=_parse_field(fields[3], 1, 12, _MONTHS, spec),
            weekdays=weekdays,
            days_star=fields[2].startswith("*"),
            weekdays_star=fields[4].startswith("*"),
        )

    def _day_matches(self, day: dt.datetime) -> bool:
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def next_after(self, now: dt.datetime) -> dt.datetime:
        """The first matching minute strictly after ``now`` (UTC)."""
        t = now.astimezone(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = t + dt.timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
                continue
            return t
        raise UsageError(f"cron expression {self.spec!r} never fires")


class StartupBehavior(enum.StrEnum):
    """What ``follow`` does before its first scheduled check."""

    skip = "skip"
    jitter = "jitter"
    immediate = "immediate"


@dataclass(frozen=True, slots=True)
class Schedule:
    """A follow schedule: every N seconds, or a cron expression."""

    every: float | None = None
    cron: CronSchedule | None = None

    @classmethod
    def from_options(cls, *, every: str | None, cron: str | None) -> Schedule:
        if every and cron:
            raise UsageError("--every and --cron cannot be used together", hint="pick one")
        if cron:
            if cron.strip().lower().startswith("@every "):
                return cls(every=parse_duration(cron.strip()[7:]))
            return cls(cron=CronSchedule.parse(cron))
        return cls(every=parse_duration(every or "6h"))

    def seconds_until_next(self, now: dt.datetime) -> float:
        """Seconds from ``now`` to the next scheduled check."""
        if self.cron is not None:
            return max(0.0, (self.cron.next_after(now) - now).total_seconds())
        assert self.every is not None
        return self.every

    def first_delay(
        self, behavior: StartupBehavior, now: dt.datetime, rng: random.Random | None = None
    ) -> float:
        """Seconds before the first check: 0, a random part of one period, or a full period."""
        if behavior is StartupBehavior.immediate:
            return 0.0
        period = self.seconds_until_next(now)
        if behavior is StartupBehavior.jitter:
            return (rng or random.Random()).uniform(0.0, period)
        return period
