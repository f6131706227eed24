"""Pure time arithmetic: bucket alignment, report windows, the bucket-in-window rule, and the
account's timezone.

Datetimes here are naive *company-local wall times*: Klaviyo ignores the offset of a custom
timeframe and reads it in the account's timezone, so windows are planned in wall time. The
timezone (from ``GET /api/accounts``, when the key may read it) adds what wall time cannot tell:
the company's "now", the offset each timeframe is sent with (RFC 3339 requires one), where a
daylight-saving change makes a window longer in elapsed time, and how to read ``date_times``
written in another offset. Without it the connector sends ``+00:00`` and keeps a margin on
every window. Wall strings are ISO 8601 without offset (``2024-01-05T00:00:00``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .constants import (
    FIRST_DATA_DAY,
    SERIES_WINDOW_CAP,
    SERIES_WINDOW_STEP,
    VALUES_WINDOW_DAYS,
    VALUES_WINDOW_YEARS,
    WEEK_START_WEEKDAY,
)

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


def zone(timezone: str | None) -> ZoneInfo | None:
    """The account's timezone, or ``None`` when it is unknown (or a name this machine lacks)."""
    if not timezone:
        return None
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def company_now(timezone: str | None) -> dt.datetime:
    """The company's wall-clock now; UTC's when the timezone is unknown."""
    tz = zone(timezone) or dt.timezone.utc
    return dt.datetime.now(tz).replace(tzinfo=None, microsecond=0)


def timeframe_bound(wall: dt.datetime, timezone: str | None, last: bool = False) -> str:
    """A wall time as Klaviyo's spec types it (RFC 3339, with an offset): the account's offset at
    that wall time, or ``+00:00`` when the timezone is unknown. Klaviyo ignores the offset and
    reads the wall time in the account's timezone, so either way the same instant is asked for.

    >>> timeframe_bound(dt.datetime(2024, 7, 1), "America/New_York")
    '2024-07-01T00:00:00-04:00'
    >>> timeframe_bound(dt.datetime(2024, 7, 1, 23, 59, 59), None)
    '2024-07-01T23:59:59+00:00'
    >>> timeframe_bound(dt.datetime(2024, 11, 3, 1, 59, 59), "America/New_York", last=True)
    '2024-11-03T01:59:59-05:00'
    """
    tz = zone(timezone)
    # A window's last second inside a repeated (fall-back) hour is the later of the two: the
    # window covers both.
    return wall.replace(tzinfo=tz or dt.timezone.utc, fold=1 if last else 0).isoformat()


def company_date_time(date_time: str, timezone: str | None) -> str:
    """A bucket start Klaviyo wrote (with the company's offset, or in UTC: undocumented) as the
    same instant in company time; unchanged when the timezone is unknown or it has no offset.

    >>> company_date_time("2024-01-05T05:00:00+00:00", "America/New_York")
    '2024-01-05T00:00:00-05:00'
    >>> company_date_time("2024-01-05T00:00:00-05:00", "America/New_York")
    '2024-01-05T00:00:00-05:00'
    """
    tz = zone(timezone)
    if tz is None:
        return date_time
    parsed = dt.datetime.fromisoformat(date_time.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return date_time
    return parsed.astimezone(tz).isoformat()


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
    when that one would begin before Klaviyo's first day of data (a week of 2023-05-29).

    Klaviyo does not say which day its weeks start on. A weekly sync starts on the earlier of the
    Sunday and the Monday on or before ``start``: the bucket holding ``start`` begins on or after
    it whichever the day, and the week before begins before it. Every later window edge is a
    whole number of weeks on, so each bucket starts inside exactly one window either way.

    >>> first_series_bucket(dt.datetime(2024, 1, 3), "weekly")  # a Wednesday: Sunday Dec 31 comes first
    datetime.datetime(2023, 12, 31, 0, 0)
    >>> first_series_bucket(dt.datetime(2023, 6, 1), "weekly")  # Thursday, Klaviyo's first day: Sunday June 4
    datetime.datetime(2023, 6, 4, 0, 0)
    """
    if interval == "weekly":
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        monday = day - dt.timedelta(days=day.weekday())
        sunday = day - dt.timedelta(days=(day.weekday() + 1) % 7)
        first = min(monday, sunday)
        while first < FIRST_DATA_DAY:  # the first Sunday or Monday on or after Klaviyo's first day
            first += dt.timedelta(days=1)
            while first.weekday() not in (0, 6):
                first += dt.timedelta(days=1)
        return first
    aligned = floor_to_bucket(start, interval)
    return aligned if aligned >= FIRST_DATA_DAY else next_bucket(aligned, interval)


def _add_step(start: dt.datetime, step: str) -> dt.datetime:
    """``start`` plus one of SERIES_WINDOW_STEP's / SERIES_WINDOW_CAP's durations, in wall time."""
    if step.endswith("M") and not step.startswith("PT"):
        return add_months(start, int(step[1:-1]))
    amount, unit = int(step.lstrip("PT")[:-1]), step[-1]
    hours = {"H": 1, "D": 24, "W": 24 * 7}[unit] * amount
    return start + dt.timedelta(hours=hours)


def elapsed(start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> dt.timedelta:
    """Real time between two company wall times; a repeated (fall-back) wall time is read the way
    that makes the span longest."""
    first = start.replace(tzinfo=tz, fold=0).astimezone(dt.timezone.utc)
    last = end.replace(tzinfo=tz, fold=1).astimezone(dt.timezone.utc)
    return last - first


def series_window_step(interval: str, first: dt.datetime, end: dt.datetime, timezone: str | None) -> str:
    """The longest step whose windows fit Klaviyo's cap for ``interval`` in wall time *and* in
    elapsed time (Klaviyo does not say which it measures), as an ISO 8601 duration.

    With the timezone known, hourly and daily windows take Klaviyo's full caps (7 days, 60 days)
    unless a window of ``[first, end)`` would hold a fall-back, which makes it an hour longer in
    elapsed time: then every window of this sync keeps the margin (167 hours, 59 days), which
    costs at most one window more than cutting that window alone. Without the timezone, any window
    might, so the margin is always kept.

    >>> series_window_step("hourly", dt.datetime(2024, 4, 1), dt.datetime(2024, 4, 15), "America/New_York")
    'P7D'
    >>> series_window_step("hourly", dt.datetime(2024, 4, 1), dt.datetime(2024, 4, 15), None)
    'PT167H'
    >>> series_window_step("hourly", dt.datetime(2024, 10, 30), dt.datetime(2024, 11, 13), "America/New_York")
    'PT167H'
    """
    margin = SERIES_WINDOW_STEP[interval]
    cap = SERIES_WINDOW_CAP.get(interval)
    tz = zone(timezone)
    if cap is None or tz is None:
        return margin
    limit = _add_step(dt.datetime(2024, 1, 1), cap) - dt.datetime(2024, 1, 1)
    window_start = first
    while window_start < end:
        window_end = min(_add_step(window_start, cap), end)
        if elapsed(window_start, window_end - ONE_SECOND, tz) > limit:
            return margin
        window_start = window_end
    return cap


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
    """Whether a bucket belongs to the window that asked for it: its start (compared in company
    wall time: ``bucket_start`` has been placed in company time by ``company_date_time``) lies in
    ``[window_start, window_last_second]``.

    >>> bucket_in_window("2024-03-01T00:00:00-05:00", "2024-01-01T00:00:00", "2024-02-29T23:59:59")
    False
    """
    wall = bucket_start[:19]
    return window_start[:19] <= wall <= window_last_second[:19]


@dataclass(frozen=True)
class ValuesTimeframe:
    """One ``segment_values`` request timeframe: a Klaviyo key, or a custom window.

    ``label`` is what rows carry in ``timeframe``: the key, or ``start/end`` in company wall time
    with ``end`` exclusive (the next window's start). ``start`` and ``end`` are the same bounds as
    RFC 3339 timestamps with the account's offset (``None`` when its timezone is unknown).
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


def plan_values_timeframes(
    timeframe: str, start: dt.datetime, end: dt.datetime, timezone: str | None = None
) -> list[ValuesTimeframe]:
    """The timeframes a ``segment_values`` sync asks for.

    A key is asked for once. ``custom`` cuts ``[start, end)`` into windows of at most a year and
    at most 365 days (Klaviyo's "1 year", read harshly: a leap year's 366 days may be refused)
    that touch without overlapping, each sent as ``[window_start, window_end - 1 s]`` with the
    account's offsets (``timeframe_bound``).

    >>> [t.label for t in plan_values_timeframes("custom", dt.datetime(2023, 1, 1), dt.datetime(2024, 6, 1))]
    ['2023-01-01T00:00:00/2024-01-01T00:00:00', '2024-01-01T00:00:00/2024-06-01T00:00:00']
    >>> plan_values_timeframes("custom", dt.datetime(2023, 6, 1), dt.datetime(2024, 7, 1))[0].label  # 2024 is a leap year
    '2023-06-01T00:00:00/2024-05-31T00:00:00'
    """
    if timeframe != "custom":
        return [ValuesTimeframe(label=timeframe, request={"key": timeframe})]
    windows = []
    for window_start, window_end in _year_windows(start, end):
        first, last = format_wall_time(window_start), format_wall_time(window_end)
        windows.append(
            ValuesTimeframe(
                label=f"{first}/{last}",
                request={
                    "start": timeframe_bound(window_start, timezone),
                    "end": timeframe_bound(window_end - ONE_SECOND, timezone, last=True),
                },
                # Typed timestamps: without the timezone the instant is unknown, so null (the
                # label keeps the wall times).
                start=timeframe_bound(window_start, timezone) if zone(timezone) else None,
                end=timeframe_bound(window_end, timezone) if zone(timezone) else None,
            )
        )
    return windows


def _year_windows(start: dt.datetime, end: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    window_start = start
    while window_start < end:
        year_on = add_months(window_start, 12 * VALUES_WINDOW_YEARS)
        window_end = min(year_on, window_start + dt.timedelta(days=VALUES_WINDOW_DAYS), end)
        yield window_start, window_end
        window_start = window_end


# The westernmost UTC offset (UTC-12): without the account's timezone, a window's end (company wall
# time) lies at most this long after the same wall time read as UTC.
LATEST_OFFSET = dt.timedelta(hours=12)


def _instant(value: str) -> dt.datetime | None:
    """An ISO 8601 date-time with an offset as an aware datetime; ``None`` if it has none or is not one."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else None


def latest_instant(wall: dt.datetime, timezone: str | None) -> dt.datetime:
    """The instant a company wall time stands for; without the timezone, the latest it could be.

    >>> latest_instant(dt.datetime(2024, 9, 8), "America/Santiago")  # skipped by the spring-forward
    datetime.datetime(2024, 9, 8, 4, 0, tzinfo=datetime.timezone.utc)
    """
    tz = zone(timezone)
    if tz is not None:
        # A repeated wall time is its later instant; one skipped by a spring-forward, the later reading.
        return max(wall.replace(tzinfo=tz, fold=fold).astimezone(dt.timezone.utc) for fold in (0, 1))
    return wall.replace(tzinfo=dt.timezone.utc) + LATEST_OFFSET


def plan_segment_batches(
    segments: Sequence[tuple[str, str | None]], window_end: dt.datetime | None, timezone: str | None, batch_size: int
) -> list[list[str]]:
    """The batches a report window (ending, exclusive, at company wall time ``window_end``) asks
    about: only the segments created before it ends (a segment has nothing to report before it
    existed), oldest first, ``batch_size`` at a time: ``ceil(existing / batch_size)`` calls, the
    fewest. ``segments`` are ``(id, created)``; a segment whose ``created`` is unknown always takes
    part, and every segment does when ``window_end`` is ``None`` (a timeframe key, relative to
    now). Without the timezone, a window is taken to end as late as any offset allows.

    >>> segments = [("A", "2024-03-01T10:00:00-05:00"), ("B", "2024-01-01T00:00:00+00:00"), ("C", None)]
    >>> plan_segment_batches(segments, dt.datetime(2024, 2, 1), "America/New_York", 2)
    [['C', 'B']]
    >>> plan_segment_batches(segments, dt.datetime(2024, 3, 2), "America/New_York", 2)
    [['C', 'B'], ['A']]
    """
    end = latest_instant(window_end, timezone) if window_end is not None else None
    oldest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    existing = []
    for segment_id, created in segments:
        at = _instant(created) if created else None
        if at is None or end is None or at < end:
            existing.append((at or oldest, segment_id))
    existing.sort()
    ids = [segment_id for _, segment_id in existing]
    return [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]


def bucket_ended_before(date_time: str, interval: str, created: str | None, timezone: str | None) -> bool:
    """Whether the bucket starting at ``date_time`` ended at or before ``created``: a segment that
    did not exist yet has no row for it. The bucket holding the creation is the first kept.

    >>> bucket_ended_before("2024-03-01T00:00:00-05:00", "daily", "2024-03-01T10:00:00-05:00", "America/New_York")
    False
    >>> bucket_ended_before("2024-02-29T00:00:00-05:00", "daily", "2024-03-01T00:00:00-05:00", "America/New_York")
    True
    >>> # Without the timezone, a day written in UTC ends a day after its UTC start, not at UTC midnight.
    >>> bucket_ended_before("2024-03-01T05:00:00+00:00", "daily", "2024-03-01T20:00:00-05:00", None)
    False
    """
    created_at = _instant(created) if created else None
    start = _instant(date_time)
    if created_at is None or start is None:
        return False
    if interval == "hourly":  # an hour of real time, even the repeated one of a fall-back
        return start + dt.timedelta(hours=1) <= created_at
    # Days, weeks and months end at the same wall time a bucket later, in company time when the
    # timezone is known, else in the offset Klaviyo wrote (a UTC-written start is not floored).
    tz = zone(timezone) or start.tzinfo
    wall = start.astimezone(tz).replace(tzinfo=None)
    step = {"daily": dt.timedelta(days=1), "weekly": dt.timedelta(weeks=1)}
    end = wall + step[interval] if interval in step else add_months(wall, 1)
    return end.replace(tzinfo=tz).astimezone(dt.timezone.utc) <= created_at
