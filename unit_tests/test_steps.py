"""The ISO 8601 steps the windows move by (``_add_step``, ``add_months``) are added with ``isodate``,
as the CDK's cursor adds the same strings: checked against the calendar, day by day, over three years."""

from __future__ import annotations

import calendar
import datetime as dt

import pytest

from source_klaviyo_segments.components import SERIES_WINDOW_CAP, SERIES_WINDOW_STEP, _add_step, add_months


def calendar_months(value: dt.datetime, months: int) -> dt.datetime:
    """The oracle: ``months`` whole months on, the day clamped to the last of the month reached."""
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    return value.replace(year=year, month=month, day=min(value.day, calendar.monthrange(year, month)[1]))


def days(first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def test_a_month_back_from_march_31_is_february_29_in_a_leap_year() -> None:
    assert _add_step(dt.datetime(2024, 3, 31), "P1M", times=-1) == dt.datetime(2024, 2, 29)
    assert add_months(dt.datetime(2023, 3, 31), -1) == dt.datetime(2023, 2, 28)


def test_months_move_as_the_calendar_does_clamped_to_the_last_day() -> None:
    for day in days(dt.datetime(2023, 1, 1, 5, 30), dt.datetime(2025, 12, 31, 5, 30)):
        for months in range(-13, 14):
            expected = calendar_months(day, months)
            assert add_months(day, months) == expected, (day, months)
            assert _add_step(day, "P1M", times=months) == expected, (day, months)
        # Several months at once are clamped once, not month by month (Jan 31 + 2 months is Mar 31).
        assert _add_step(day, "P11M") == calendar_months(day, 11)


STEPS = sorted({*SERIES_WINDOW_STEP.values(), *SERIES_WINDOW_CAP.values(), "P1D", "P2W"} - {"P11M"})
UNITS = {"H": dt.timedelta(hours=1), "D": dt.timedelta(days=1), "W": dt.timedelta(weeks=1)}


@pytest.mark.parametrize("step", STEPS)
def test_hours_days_and_weeks_are_wall_time_durations(step: str) -> None:
    length = int(step.strip("PT")[:-1]) * UNITS[step[-1]]
    for day in days(dt.datetime(2024, 1, 1, 23), dt.datetime(2024, 12, 31, 23)):
        for times in (-3, -1, 1, 2):
            assert _add_step(day, step, times=times) == day + length * times, (day, step, times)
