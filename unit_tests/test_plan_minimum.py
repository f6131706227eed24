"""The plan makes the fewest report calls any shared-window plan within Klaviyo's caps can make.

Two oracles, both written here and not imported from the connector:
- an exhaustive search over every set of window ends, on small random cases of
  ``plan_series_windows`` (abstract days, caps and creation days);
- on the calendar (daily, 1 to 140 days, with or without the account's timezone, across a DST
  fall-back), a brute-force minimum over every window end, against ``plan_report_stream``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from source_klaviyo_segments.components import (
    SERIES_WINDOWS,
    DerivedSettings,
    ReportStream,
    plan_report_stream,
    plan_series_windows,
)

DAY0 = dt.datetime(2024, 1, 1)


def exhaustive_minimum(days: int, cap: int, created: list[int | None], batch: int) -> int:
    """Every way to cut days 0..``days`` into windows of at most ``cap`` days: the cheapest, where a
    window ending on day e costs ceil(segments created before e / batch)."""
    best = math.inf
    for ends in itertools.product([False, True], repeat=days - 1):
        cuts = [0] + [d for d, cut in enumerate(ends, start=1) if cut] + [days]
        if any(b - a > cap for a, b in itertools.pairwise(cuts)):
            continue
        cost = sum(math.ceil(sum(1 for c in created if c is None or c < end) / batch) for end in cuts[1:])
        best = min(best, cost)
    return int(best)


@settings(max_examples=300, deadline=None)
@given(
    days=st.integers(1, 12),
    cap=st.integers(1, 6),
    created=st.lists(st.one_of(st.none(), st.integers(0, 12)), max_size=12),
    batch=st.integers(1, 4),
)
def test_the_window_ends_chosen_make_the_exhaustive_minimum_of_calls(
    days: int, cap: int, created: list[int | None], batch: int
) -> None:
    boundaries = [DAY0 + dt.timedelta(days=d) for d in range(days + 1)]

    def segments_by(end: dt.datetime) -> int:
        return sum(1 for c in created if c is None or DAY0 + dt.timedelta(days=c) < end)

    windows = plan_series_windows(boundaries, segments_by, batch, lambda a, b: (b - a).days <= cap)
    # The windows touch, cover the range, and each fits the cap...
    assert windows[0][0] == boundaries[0] and windows[-1][1] == boundaries[-1]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert all(0 < (end - start).days <= cap for start, end in windows)
    # ...and cost no more than the cheapest of every possible cut.
    calls = sum(math.ceil(segments_by(end) / batch) for _, end in windows)
    assert calls == exhaustive_minimum(days, cap, created, batch)


def calendar_minimum(start: dt.datetime, end: dt.datetime, created: list[dt.datetime], timezone: str | None) -> int:
    """The fewest calls for daily windows within Klaviyo's 60 days (wall, and elapsed when the
    timezone is known; 59 days without it), 100 segments a call, by brute force over window ends."""
    zone = ZoneInfo(timezone) if timezone else None
    days = [start + dt.timedelta(days=d) for d in range((end - start).days + 1)]

    def fits(a: dt.datetime, b: dt.datetime) -> bool:
        if zone is None:
            return b - a <= dt.timedelta(days=59)
        instants = b.replace(tzinfo=zone).astimezone(dt.timezone.utc) - a.replace(tzinfo=zone).astimezone(dt.timezone.utc)
        return b - a <= dt.timedelta(days=60) and instants <= dt.timedelta(days=60)

    def existing(at: dt.datetime) -> int:
        # Without the timezone, a window may end as late as UTC-12 allows.
        end_instant = at.replace(tzinfo=zone) if zone else at.replace(tzinfo=dt.timezone.utc) + dt.timedelta(hours=12)
        return sum(1 for c in created if c < end_instant)

    fewest = [0.0] + [math.inf] * (len(days) - 1)
    for j in range(1, len(days)):
        fewest[j] = min(fewest[i] for i in range(j) if fits(days[i], days[j])) + math.ceil(existing(days[j]) / 100)
    return int(fewest[-1])


@settings(max_examples=150, deadline=None)
@given(
    start_day=st.integers(0, 320),
    length=st.integers(1, 140),
    creation_days=st.lists(st.integers(-30, 470), min_size=0, max_size=450),
    timezone=st.sampled_from([None, "America/New_York", "Australia/Sydney"]),
)
def test_a_daily_plan_makes_the_fewest_calls_on_the_calendar(
    start_day: int, length: int, creation_days: list[int], timezone: str | None
) -> None:
    start = DAY0 + dt.timedelta(days=start_day)
    end = start + dt.timedelta(days=length)
    zone = ZoneInfo(timezone) if timezone else dt.timezone.utc
    created = [(DAY0 + dt.timedelta(days=d, hours=13)).replace(tzinfo=zone) for d in creation_days]
    segments = [(f"S{n:03d}", c.isoformat()) for n, c in enumerate(created)]
    derived = DerivedSettings(
        timezone=timezone,
        series_start=start.isoformat(),
        series_end=(end - dt.timedelta(seconds=1)).isoformat(),
        series_step="P60D" if timezone else "P59D",
    )
    plan = plan_report_stream(ReportStream("segment_series", SERIES_WINDOWS, True), derived, "daily", segments, 100)
    assert len(plan.calls) == calendar_minimum(start, end, created, timezone)
    # Each call asks only about segments that exist by its window's end, each of them once.
    for call in plan.calls:
        assert call.window_end is not None and 0 < len(call.segment_ids) <= 100
    by_window: dict[tuple[dt.datetime | None, dt.datetime | None], list[str]] = {}
    for call in plan.calls:
        by_window.setdefault((call.window_start, call.window_end), []).extend(call.segment_ids)
    for (_, window_end), ids in by_window.items():
        assert window_end is not None
        if timezone:
            end_instant = window_end.replace(tzinfo=ZoneInfo(timezone))
        else:
            end_instant = window_end.replace(tzinfo=dt.timezone.utc) + dt.timedelta(hours=12)
        assert sorted(ids) == sorted(s for s, c in segments if dt.datetime.fromisoformat(c) < end_instant)


def test_a_window_ends_before_segments_join_where_full_cap_windows_would_pay_for_them() -> None:
    # 100 days, 100 segments from the start and 50 joining on day 50. Two windows are needed either
    # way. Full 60-day windows from the start end on days 60 and 100, after the newcomers joined:
    # 2 + 2 = 4 calls. Ending the first window on day 40, before they join: 1 + 2 = 3.
    segments = [(f"O{n}", "2023-12-01T00:00:00+00:00") for n in range(100)]
    segments += [(f"N{n}", (DAY0 + dt.timedelta(days=50, hours=13)).isoformat() + "+00:00") for n in range(50)]
    derived = DerivedSettings(timezone="UTC", series_start=DAY0.isoformat(), series_end="2024-04-09T23:59:59", series_step="P60D")
    plan = plan_report_stream(ReportStream("segment_series", SERIES_WINDOWS, True), derived, "daily", segments, 100)
    assert len(plan.calls) == 3
    assert [len(call.segment_ids) for call in plan.calls] == [100, 100, 50]
