"""Pure time arithmetic: bucket alignment, report windows and the bucket-in-window rule.

All datetimes here are naive *company-local wall times*. Klaviyo ignores the offset of a custom
timeframe and reads it in the account's timezone, so the connector plans in wall time and never
needs to know that timezone. Strings are ISO 8601 without offset (``2024-01-05T00:00:00``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Iterator

from .constants import FIRST_DATA_DAY, VALUES_WINDOW_YEARS, WEEK_START_WEEKDAY

WALL_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
# The last second a window covers: windows are sent as [start, next_start - 1 s] so that a bucket
# starting at next_start is outside the window whether Klaviyo reads `end` as inclusive or not.
ONE_SECOND = dt.timedelta(seconds=1)


def wall_time(value: str) -> dt.datetime:
    """Parse a date or an ISO 8601 date-time and drop any offset.

    >>> wall_time("2024-01-05T00:00:00-05:00")
    datetime.datetime(2024, 1, 5, 0, 0)
    >>> wall_time("2024-01-05")
    datetime.datetime(2024, 1, 5, 0, 0)
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1]
    parsed = dt.datetime.fromisoformat(text)
    return parsed.replace(tzinfo=None, microsecond=0)


def format_wall_time(value: dt.datetime) -> str:
    return value.strftime(WALL_TIME_FORMAT)


def add_months(value: dt.datetime, months: int) -> dt.datetime:
    month_index = value.month - 1 + months
    year, month = value.year + month_index // 12, month_index % 12 + 1
    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)


def floor_to_bucket(value: dt.datetime, interval: str) -> dt.datetime:
    """The start of the bucket that contains ``value``.

    >>> floor_to_bucket(dt.datetime(2024, 1, 4, 13, 30), "weekly")  # a Thursday
    datetime.datetime(2024, 1, 1, 0, 0)
    """
    hour = value.replace(minute=0, second=0, microsecond=0)
    if interval == "hourly":
        return hour
    day = hour.replace(hour=0)
    if interval == "daily":
        return day
    if interval == "weekly":
        return day - dt.timedelta(days=(day.weekday() - WEEK_START_WEEKDAY) % 7)
    if interval == "monthly":
        return day.replace(day=1)
    raise ValueError(f"unknown interval {interval!r}")


def next_bucket(value: dt.datetime, interval: str) -> dt.datetime:
    """The start of the bucket after the one that contains ``value``."""
    start = floor_to_bucket(value, interval)
    if interval == "hourly":
        return start + dt.timedelta(hours=1)
    if interval == "daily":
        return start + dt.timedelta(days=1)
    if interval == "weekly":
        return start + dt.timedelta(weeks=1)
    return add_months(start, 1)


def first_series_bucket(start: dt.datetime, interval: str) -> dt.datetime:
    """Where a series sync starts: the bucket containing ``start``, or the first whole bucket
    when that one would begin before Klaviyo's first day of data (a week of 2023-05-29)."""
    aligned = floor_to_bucket(start, interval)
    return aligned if aligned >= FIRST_DATA_DAY else next_bucket(aligned, interval)


def lookback_duration(interval: str, days: int) -> str:
    """The cursor's lookback as an ISO 8601 duration of whole buckets, at least ``days`` long.

    Subtracting whole buckets from a bucket start lands on a bucket start, so incremental
    windows stay aligned without any clamping.

    >>> lookback_duration("weekly", 8)
    'P2W'
    >>> lookback_duration("monthly", 1)
    'P1M'
    """
    if interval == "weekly":
        return f"P{math.ceil(days / 7)}W"
    if interval == "monthly":
        return f"P{math.ceil(days / 28)}M"
    return f"P{days}D"


def bucket_in_window(bucket_start: str, window_start: str, window_last_second: str) -> bool:
    """Whether a bucket belongs to the window that asked for it: its start (compared in wall
    time, so daylight-saving offsets do not matter) lies in ``[window_start, window_last_second]``.

    >>> bucket_in_window("2024-03-01T00:00:00-05:00", "2024-01-01T00:00:00", "2024-02-29T23:59:59")
    False
    """
    wall = bucket_start[:19]
    return window_start[:19] <= wall <= window_last_second[:19]


@dataclass(frozen=True)
class ValuesTimeframe:
    """One ``segment_values`` request timeframe: a Klaviyo key, or a custom window.

    ``label`` is what rows carry in ``timeframe``: the key, or ``start/end`` with ``end``
    exclusive (the next window's start).
    """

    label: str
    request: dict[str, str]
    start: str | None = None
    end: str | None = None

    def as_partition(self) -> dict[str, Any]:
        return {
            "timeframe": self.label,
            "timeframe_start": self.start,
            "timeframe_end": self.end,
            "request_timeframe": self.request,
        }


def plan_values_timeframes(timeframe: str, start: dt.datetime, end: dt.datetime) -> list[ValuesTimeframe]:
    """The timeframes a ``segment_values`` sync asks for.

    A key is asked for once. ``custom`` cuts ``[start, end)`` into windows of at most one year
    that touch without overlapping, each sent as ``[window_start, window_end - 1 s]``.

    >>> [t.label for t in plan_values_timeframes("custom", dt.datetime(2024, 1, 1), dt.datetime(2025, 6, 1))]
    ['2024-01-01T00:00:00/2025-01-01T00:00:00', '2025-01-01T00:00:00/2025-06-01T00:00:00']
    """
    if timeframe != "custom":
        return [ValuesTimeframe(label=timeframe, request={"key": timeframe})]
    windows = []
    for window_start, window_end in _year_windows(start, end):
        first, last = format_wall_time(window_start), format_wall_time(window_end)
        windows.append(
            ValuesTimeframe(
                label=f"{first}/{last}",
                request={"start": first, "end": format_wall_time(window_end - ONE_SECOND)},
                start=first,
                end=last,
            )
        )
    return windows


def _year_windows(start: dt.datetime, end: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    window_start = start
    while window_start < end:
        window_end = min(add_months(window_start, 12 * VALUES_WINDOW_YEARS), end)
        yield window_start, window_end
        window_start = window_end
