"""The bench judges the connector's report calls against its own minimum (bench/minimum.py): that
minimum must be the true one, so it is checked here against an exhaustive search over every tiling."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from zoneinfo import ZoneInfo

import pytest

from bench.minimum import bucket_bounds, fewest_calls, fits

ZONE = "America/New_York"


def exhaustive(interval: str, start: dt.datetime, end: dt.datetime, zone: str | None, segments: int,
               created: list[dt.datetime] | None) -> int:
    """The cheapest of every tiling of the bucket boundaries into windows within the cap."""
    bounds = bucket_bounds(interval, start, end)
    tz = ZoneInfo(ZONE)

    def cost(window_end: dt.datetime) -> int:
        if created is None:
            return math.ceil(segments / 100)
        moment = window_end.replace(tzinfo=tz, fold=1)
        return math.ceil(sum(1 for when in created if when < moment) / 100)

    last = len(bounds) - 1
    allowed = {(a, b) for a in range(last) for b in range(a + 1, last + 1) if fits(interval, bounds[a], bounds[b], zone)}
    costs = [cost(bound) for bound in bounds]
    best = None
    for size in range(last):
        for cuts in itertools.combinations(range(1, last), size):
            edges = [0, *cuts, last]
            if all(pair in allowed for pair in zip(edges, edges[1:], strict=False)):
                total = sum(costs[b] for b in edges[1:])
                best = total if best is None else min(best, total)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(12))
def test_the_minimum_is_the_cheapest_tiling(seed: int) -> None:
    rng = random.Random(seed)
    # Monthly windows (cap 52 weeks: at most 11 months) over 13 to 15 months: every tiling can be tried.
    start = dt.datetime(2023, rng.randint(6, 12), 1)
    end = (start + dt.timedelta(days=31 * rng.randint(13, 15))).replace(day=1)
    segments = rng.randint(1, 450)
    created = sorted(
        (start + dt.timedelta(days=rng.uniform(-60, (end - start).days))).replace(tzinfo=ZoneInfo(ZONE))
        for _ in range(segments))
    zone = rng.choice([ZONE, None])
    plan = fewest_calls("monthly", start, end, ZONE, segments, created)
    assert plan.calls == exhaustive("monthly", start, end, ZONE, segments, created)
    assert plan.windows[0][0] == start and plan.windows[-1][1] == end
    assert all(fits("monthly", a, b, ZONE) for a, b in plan.windows)
    assert fewest_calls("monthly", start, end, zone, segments).calls == exhaustive(
        "monthly", start, end, zone, segments, None)


def test_choosing_window_ends_beats_full_cap_windows() -> None:
    """Issue 18's case: 1,000 segments created evenly over a two-year daily backfill. Full 60-day
    windows from the start cost 79 calls; the best choice of window ends, 72."""
    first, last = dt.datetime(2023, 6, 1), dt.datetime(2025, 5, 31, 23)
    created = sorted((first + (last - first) * index / 999).replace(tzinfo=ZoneInfo(ZONE)) for index in range(1000))
    assert fewest_calls("daily", first, dt.datetime(2025, 6, 1), ZONE, 1000, created).calls == 72


@pytest.mark.parametrize(("zone", "calls"), [(ZONE, 6), (None, 8)])
def test_a_fall_back_costs_a_bucket_only_where_the_zone_is_unknown_or_it_falls(zone: str | None, calls: int) -> None:
    """179 days over the 2024-11-03 fall-back, 150 segments: 60 + 59 + 60 days with the zone known,
    59-day windows without it."""
    assert fewest_calls("daily", dt.datetime(2024, 9, 1), dt.datetime(2025, 2, 27), zone, 150).calls == calls
