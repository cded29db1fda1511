"""Time-of-day schedule: which timing plan runs at a local date and time.

A schedule is day plans (times of day at which a plan starts), a week that
names the day plan for each weekday, and exception days (holidays) that
name another day plan. The runtime evaluates it against the local clock and
hands the core a SetPlan when the answer changes; the core itself reads no
clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class DayPlan:
    id: str
    entries: tuple[tuple[int, str], ...]  # (minute of the day, plan id), sorted, first at 0


@dataclass(frozen=True, slots=True)
class Schedule:
    day_plans: dict[str, DayPlan]
    week: tuple[str, ...]  # day plan id for mon..sun
    exceptions: dict[dt.date, str]  # date -> day plan id

    def day_plan(self, day: dt.date) -> DayPlan:
        return self.day_plans[self.exceptions.get(day, self.week[day.weekday()])]

    def plan_at(self, when: dt.datetime) -> str:
        """The plan in force at a local date and time."""
        minute = when.hour * 60 + when.minute
        current = ""
        for start, plan in self.day_plan(when.date()).entries:
            if start <= minute:
                current = plan
        return current

    def next_change(self, when: dt.datetime) -> dt.datetime:
        """The next local time at which a day plan entry begins (at most a day ahead)."""
        minute = when.hour * 60 + when.minute
        for start, _ in self.day_plan(when.date()).entries:
            if start > minute:
                return dt.datetime.combine(when.date(), dt.time(start // 60, start % 60))
        return dt.datetime.combine(when.date() + dt.timedelta(days=1), dt.time(0, 0))


def parse_hhmm(text: str) -> int:
    """'06:30' -> 390; ValueError with the reason otherwise."""
    hours, sep, minutes = text.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"{text!r} is not HH:MM")
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ValueError(f"{text!r} is not a time of day")
    return h * 60 + m
