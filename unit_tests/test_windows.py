"""Window planning, property-tested on the windows the report calls really ask for when the
manifest is read: they tile the range, respect Klaviyo's documented caps in wall and elapsed time, align
to buckets (computed here, not with the connector's helpers), skip nothing, and are as few as the
caps allow."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests_mock
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.state_builder import StateBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from source_klaviyo_segments.components import plan_values_timeframes
from unit_tests import klaviyo_mock as km
from unit_tests.klaviyo_mock import FakeKlaviyo

SECOND = dt.timedelta(seconds=1)
# The longest window planned per interval: Klaviyo's documented caps (7 days hourly, 60 days
# daily) less one bucket-aligned margin for a DST fall-back; weekly is 52 weeks.
# Klaviyo's documented caps (hourly 7 days, daily 60 days; weekly 52 weeks as third parties report).
KLAVIYO_CAPS = {"hourly": dt.timedelta(days=7), "daily": dt.timedelta(days=60), "weekly": dt.timedelta(weeks=52)}
BUCKET = {"hourly": dt.timedelta(hours=1), "daily": dt.timedelta(days=1), "weekly": dt.timedelta(weeks=1)}
# Without the account's timezone, any window might hold a daylight-saving fall-back (an hour longer
# in elapsed time): hourly and daily windows are one bucket shorter than the cap, which then fits
# both readings. Weekly windows hold both changes of a year, whose hours cancel.
WINDOW_CAPS = {
    interval: cap - (BUCKET[interval] if interval in ("hourly", "daily") else dt.timedelta(0))
    for interval, cap in KLAVIYO_CAPS.items()
}


FIRST_DATA_DAY = dt.datetime(2023, 6, 1)  # Klaviyo: no data before June 1st, 2023


def floor_to_bucket(value: dt.datetime, interval: str) -> dt.datetime:
    """The start of the bucket holding ``value``; weeks on the earlier of Sunday and Monday, the
    two days Klaviyo's (undocumented) weeks may start on."""
    hour = value.replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    if interval == "hourly":
        return hour
    if interval == "daily":
        return day
    if interval == "monthly":
        return day.replace(day=1)
    sunday = day - dt.timedelta(days=(day.isoweekday() % 7))
    monday = day - dt.timedelta(days=day.isoweekday() - 1)
    return min(sunday, monday)


def windows(
    config: dict[str, Any], state: dict[str, Any] | None = None, timezone: str | None = None
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The windows the series report calls ask for, as [start, end) wall times: a read against the
    fake Klaviyo (``timezone`` is the account's; ``None``: the key may not read it), one segment,
    so one call a window."""
    state_messages = StateBuilder().with_stream_state("segment_series", state).build() if state else None
    fake = FakeKlaviyo(["SEG001"], timezone=timezone)
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        output = km.read_source(
            {**config, "segment_ids": ["SEG001"]}, km.catalog("segment_series", SyncMode.incremental), state_messages
        )
    assert not output.errors, output.errors
    timeframes = [body["data"]["attributes"]["timeframe"] for body in fake.bodies]
    return sorted((wall(t["start"]), wall(t["end"]) + SECOND) for t in timeframes)


def wall(value: str) -> dt.datetime:
    """An RFC 3339 timeframe bound's wall time (Klaviyo reads it in the account's timezone)."""
    return dt.datetime.fromisoformat(value).replace(tzinfo=None)


def months_between(start: dt.datetime, end: dt.datetime) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


dates = st.dates(min_value=dt.date(2023, 6, 1), max_value=dt.date(2026, 6, 1))
# Starts whose ranges (up to 800 days) end before the clock's now, which caps a later end_date.
past_dates = st.dates(min_value=dt.date(2023, 6, 1), max_value=dt.date(2024, 6, 1))


# Each example runs a read against mocked HTTP; the plan's own minimality is held to exhaustive
# oracles in test_plan_minimum.py, so fewer examples here.
@settings(max_examples=30, deadline=None)
@given(
    interval=st.sampled_from(["hourly", "daily", "weekly", "monthly"]),
    start=past_dates,
    length_days=st.integers(min_value=1, max_value=800),
    start_hour=st.integers(min_value=0, max_value=23),
)
def test_windows_tile_the_range_within_caps_aligned_to_buckets(
    interval: str, start: dt.date, length_days: int, start_hour: int
) -> None:
    if interval == "hourly":
        length_days = min(length_days, 40)
    first = dt.datetime.combine(start, dt.time(start_hour))
    end = first + dt.timedelta(days=length_days)
    config = km.config(interval=interval, start_date=first.isoformat(), end_date=end.isoformat())
    planned = windows(config)
    aligned_start = floor_to_bucket(first, interval)
    if aligned_start < FIRST_DATA_DAY:  # a week that began before Klaviyo's first day: the first whole one
        aligned_start = FIRST_DATA_DAY + dt.timedelta(days=(7 - FIRST_DATA_DAY.isoweekday()) % 7)  # Sunday June 4
    if aligned_start >= end:
        assert planned == []
        return
    # Tiled: contiguous from the first bucket to the end, without gaps or overlaps.
    assert planned[0][0] == aligned_start
    assert planned[-1][1] == end
    for (_, previous_end), (next_start, _) in zip(planned, planned[1:], strict=False):
        assert previous_end == next_start
    for window_start, window_end in planned:
        if interval == "weekly":
            assert (window_start - aligned_start) % dt.timedelta(weeks=1) == dt.timedelta(0)
        else:
            assert floor_to_bucket(window_start, interval) == window_start
        if window_end != end and interval != "weekly":
            assert floor_to_bucket(window_end, interval) == window_end
        if interval == "monthly":
            assert months_between(window_start, window_end) <= 11
            assert window_end - window_start <= dt.timedelta(weeks=52)
        else:
            assert window_end - window_start <= WINDOW_CAPS[interval]
    # As few as the caps allow.
    if interval == "monthly":
        buckets = months_between(aligned_start, end - SECOND) + 1  # the months [aligned_start, end) touches
        assert len(planned) == math.ceil(buckets / 11)
    else:
        assert len(planned) == math.ceil((end - aligned_start) / WINDOW_CAPS[interval])


def elapsed_at_most(zone: ZoneInfo, start: dt.datetime, last_second: dt.datetime) -> dt.timedelta:
    """The longest real time from ``start`` to ``last_second`` (company wall times) in ``zone``,
    reading an ambiguous wall time at the fall-back the way that makes it longest."""
    earliest = start.replace(tzinfo=zone, fold=0).astimezone(dt.timezone.utc)
    latest = last_second.replace(tzinfo=zone, fold=1).astimezone(dt.timezone.utc)
    return latest - earliest


ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata", "Asia/Tokyo"]
DST_RANGES = [
    ("hourly", "2024-03-25", "2024-04-20"),
    ("hourly", "2024-10-20", "2024-11-15"),
    ("daily", "2023-06-01", "2025-06-01"),
    ("daily", "2024-09-01", "2024-12-30"),
    # One window shorter than the margin on every window allows: 335 hours (2 x 167 < 335 <= 168 + 167),
    # 179 days (3 x 59 < 179 <= 60 + 59 + 60), each holding New York's 2024-11-03 fall-back.
    ("hourly", "2024-10-30T00:00:00", "2024-11-12T23:00:00"),
    ("daily", "2024-09-01", "2025-02-27"),
]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("interval", "start", "end"), DST_RANGES)
@pytest.mark.parametrize("timezone_known", [True, False], ids=["accounts:read", "no-timezone"])
def test_windows_fit_klaviyos_caps_in_wall_and_elapsed_time_across_dst(
    zone: str, interval: str, start: str, end: str, timezone_known: bool
) -> None:
    # Klaviyo does not say whether its caps are wall or elapsed time; a refused window would fail
    # every sync, so each window must fit either way. Without the timezone, in any zone.
    config = km.config(interval=interval, start_date=start, end_date=end)
    planned = windows(config, timezone=zone if timezone_known else None)
    for window_start, window_end in planned:
        request_length = elapsed_at_most(ZoneInfo(zone), window_start, window_end - SECOND)
        assert request_length <= KLAVIYO_CAPS[interval], (window_start, window_end, request_length)
        assert window_end - SECOND - window_start <= KLAVIYO_CAPS[interval]
    # As few as fit: with the timezone, only a window holding a fall-back gives up a bucket.
    first, end_ = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
    if timezone_known:
        assert len(planned) == fewest_windows(interval, first, end_, ZoneInfo(zone))
    else:
        assert len(planned) == math.ceil((end_ - first) / WINDOW_CAPS[interval])


def fewest_windows(interval: str, first: dt.datetime, end: dt.datetime, zone: ZoneInfo) -> int:
    """The fewest whole-bucket windows tiling [first, end) that each fit Klaviyo's cap in wall and in
    elapsed time: greedily, each as long as fits (a shorter window never lets the next one reach further)."""
    cap, count, at = KLAVIYO_CAPS[interval], 0, first
    while at < end:
        following = min(at + cap, end)
        while elapsed_at_most(zone, at, following - SECOND) > cap:
            following -= BUCKET[interval]
        count, at = count + 1, following
    return count


@pytest.mark.parametrize("zone", ZONES)
def test_with_the_timezone_a_range_without_a_fall_back_takes_klaviyos_full_caps(zone: str) -> None:
    # 14 days in May hold no fall-back in any of these zones (Sydney's is in early April): two
    # 7-day windows, where the margin needs three.
    config = km.config(interval="hourly", start_date="2024-05-01", end_date="2024-05-15")
    assert len(windows(config, timezone=zone)) == 2
    assert len(windows(config)) == 3


@settings(max_examples=20, deadline=None)
@given(
    interval=st.sampled_from(["hourly", "daily", "weekly", "monthly"]),
    saved=st.datetimes(min_value=dt.datetime(2023, 9, 1), max_value=dt.datetime(2024, 12, 1)),
    lookback_days=st.integers(min_value=0, max_value=40),
)
def test_incremental_restarts_at_or_before_the_newest_saved_bucket(interval: str, saved: dt.datetime, lookback_days: int) -> None:
    newest_bucket = floor_to_bucket(saved, interval)
    end = newest_bucket + dt.timedelta(days=3)
    config = km.config(interval=interval, start_date="2023-06-01", end_date=end.isoformat(), lookback_window_days=lookback_days)
    state = {"date_time": newest_bucket.isoformat()}
    planned = windows(config, state)
    restart = planned[0][0]
    # Re-reads the newest saved bucket (it may have been incomplete) and at least the lookback...
    assert restart <= newest_bucket - dt.timedelta(days=lookback_days)
    # ...but not much more (whole buckets: a monthly lookback counts 28-day months), on a bucket
    # boundary (for weeks: whole weeks from the saved bucket, whichever day Klaviyo starts them on).
    if interval == "weekly":
        assert (newest_bucket - restart) % dt.timedelta(weeks=1) == dt.timedelta(0)
    else:
        assert floor_to_bucket(restart, interval) == restart
    assert newest_bucket - restart < dt.timedelta(days=lookback_days + 62)
    assert planned[-1][1] == end


@settings(max_examples=100, deadline=None)
@given(start=dates, length_days=st.integers(min_value=1, max_value=1500))
def test_values_custom_windows_touch_and_stay_within_a_year(start: dt.date, length_days: int) -> None:
    first = dt.datetime.combine(start, dt.time())
    end = first + dt.timedelta(days=length_days)
    planned = plan_values_timeframes("custom", first, end)
    windows = [tuple(dt.datetime.fromisoformat(bound) for bound in window.label.split("/")) for window in planned]
    assert windows[0][0] == first and windows[-1][1] == end
    for (_, previous_end), (following_start, _) in zip(windows, windows[1:], strict=False):
        assert previous_end == following_start
    for window, (window_start, window_end) in zip(planned, windows, strict=True):
        # Without the timezone, a row's typed bounds are unknown instants: null.
        assert window.start is None and window.end is None
        # Sent with +00:00: Klaviyo ignores the offset, the wall time counts.
        assert window.request["start"] == window_start.isoformat() + "+00:00"
        assert window.request["end"] == (window_end - SECOND).isoformat() + "+00:00"
        assert window_end - SECOND - window_start < dt.timedelta(days=365)  # Klaviyo's "1 year", read harshly
    assert len(planned) == math.ceil(length_days / 365)
